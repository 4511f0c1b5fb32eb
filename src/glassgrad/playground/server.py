"""The web server: Starlette routes served by uvicorn, one ``Session`` per WebSocket.

- ``GET /``: the page; ``/static/...``: its script and style (shipped in the wheel).
- ``WS /ws``: a tab's session. The page sends the messages of ``messages.py``; the server
  replies to each, and a sender task pushes a ``state`` snapshot whenever the session changed,
  at most ``FPS`` times a second. The snapshot is made in a worker thread and sent before the
  next one is made, so a slow page gets fewer frames and never slows training, which runs in
  the session's own thread.
- ``POST /api/{sid}/csv``: the user's CSV (the raw file as the body, at most 1 MiB).
- ``GET /api/{sid}/model.safetensors``, ``/api/{sid}/trace.md``, ``/api/{sid}/trace.json``:
  exports of the tab's model and of its next step's trace.

``sid`` is an unguessable token the server gives the tab in its ``hello`` message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import secrets
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import serialization
from . import views
from .data import MAX_CSV_BYTES
from .messages import SPEEDS, changed, handle
from .presets import PRESETS
from .session import Session

try:  # the playground's own extra: pip install "glassgrad[playground]"
    import anyio
    import uvicorn
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route, WebSocketRoute
    from starlette.staticfiles import StaticFiles
    from starlette.websockets import WebSocket, WebSocketDisconnect
except ImportError as e:  # reported by create_app, so importing glassgrad never needs them
    _MISSING: ImportError | None = e
else:
    _MISSING = None

STATIC = Path(__file__).parent / "static"
FPS = 20  # most snapshots per second sent to one tab
WS_MAX_BYTES = 1 << 20  # larger frames close the connection (uvicorn); smaller get a message
LOCAL_HOSTS = ["127.0.0.1", "localhost", "[::1]", "::1"]
# The page may load and connect only to its own server: nothing leaves the machine.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _require() -> None:
    if _MISSING is not None:
        raise ImportError(
            f"glassgrad playground needs Starlette and uvicorn ({_MISSING}). Fix: "
            f"pip install \"glassgrad[playground]\"")


def dumps(obj: Any) -> str:
    """JSON for the page; NaN and ±inf (which JSON cannot carry) become null."""
    try:
        return json.dumps(obj, allow_nan=False, separators=(",", ":"))
    except ValueError:
        return json.dumps(_finite(obj), allow_nan=False, separators=(",", ":"))


def _finite(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"type": "error", "message": message}, status_code=status)


class Playground:
    """The app's state: the live sessions by token (one per open tab)."""

    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}

    def session(self, request: Request) -> Session | None:
        return self.sessions.get(request.path_params["sid"])

    async def index(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={
            "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store"})

    async def ws(self, ws: WebSocket) -> None:
        origin, host = ws.headers.get("origin"), ws.headers.get("host")
        if origin is not None and origin.split("://", 1)[-1] != host:
            await ws.close(code=1008)  # another site's page may not drive this server
            return
        await ws.accept()
        session = Session()
        sid = secrets.token_urlsafe(16)
        self.sessions[sid] = session
        lock = asyncio.Lock()

        async def send(*objs: Any) -> None:
            # One handler's replies (config, then data) go out together: a state snapshot
            # pushed between them would reach the page before the shape it belongs to.
            texts = [obj if isinstance(obj, str) else dumps(obj) for obj in objs]
            async with lock:
                for text in texts:
                    await ws.send_text(text)

        try:
            await send({"type": "hello", "session": sid, "speeds": list(SPEEDS),
                        "speed": session.speed,
                        "presets": {k: v["title"] for k, v in PRESETS.items()}})
            await send(*changed(session))
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._push_state, session, send)
                await self._receive(ws, session, send)
                tg.cancel_scope.cancel()
        except WebSocketDisconnect:
            pass
        finally:
            self.sessions.pop(sid, None)
            await anyio.to_thread.run_sync(session.close)

    async def _receive(self, ws: WebSocket, session: Session, send: Any) -> None:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            text = msg.get("text")
            payload = text if text is not None else msg.get("bytes")
            await send(*await anyio.to_thread.run_sync(handle, session, payload))

    async def _push_state(self, session: Session, send: Any) -> None:
        sent = -1
        while True:
            if session.version != sent:
                sent = session.version
                await send(await anyio.to_thread.run_sync(lambda: dumps(session.snapshot())))
            await anyio.sleep(1 / FPS)

    async def upload(self, request: Request) -> Response:
        session = self.session(request)
        if session is None:
            return _error(404, "upload: this tab's session has ended (the page was closed or "
                               "the server restarted). Fix: reload the page.")
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_CSV_BYTES:
            return _error(413, f"upload: the file has {int(length):,} bytes, more than the "
                               f"{MAX_CSV_BYTES:,} the playground reads. Fix: upload a smaller "
                               f"CSV (at most 5000 rows).")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_CSV_BYTES:
                return _error(413, f"upload: the body is larger than {MAX_CSV_BYTES:,} bytes. "
                                   f"Fix: upload a smaller CSV (at most 5000 rows).")
        name = request.query_params.get("name", "upload.csv")[:120]
        try:
            await anyio.to_thread.run_sync(session.load_csv, bytes(body), name)
        except ValueError as e:
            return _error(400, str(e))
        return Response(dumps({"type": "uploaded", "messages": changed(session)}),
                        media_type="application/json")

    async def model(self, request: Request) -> Response:
        session = self.session(request)
        if session is None:
            return _error(404, "export: this tab's session has ended. Fix: reload the page.")
        data = await anyio.to_thread.run_sync(_safetensors, session)
        return Response(data, media_type="application/octet-stream", headers={
            "Content-Disposition": 'attachment; filename="playground.safetensors"'})

    async def trace(self, request: Request) -> Response:
        session = self.session(request)
        if session is None:
            return _error(404, "export: this tab's session has ended. Fix: reload the page.")
        fmt = request.path_params["fmt"]
        if fmt not in ("md", "json"):
            return _error(404, f"export: no trace format {fmt[:20]!r}; use trace.md or "
                               f"trace.json.")
        render = views.step_markdown if fmt == "md" else views.step_json
        text = await anyio.to_thread.run_sync(render, session)
        media = "text/markdown" if fmt == "md" else "application/json"
        return Response(text, media_type=f"{media}; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="step-{session.steps + 1}.{fmt}"'})


def _safetensors(session: Session) -> bytes:
    fd, path = tempfile.mkstemp(suffix=".safetensors")
    os.close(fd)
    try:
        with session.lock:
            serialization.save(session.b.model, path)
        return Path(path).read_bytes()
    finally:
        os.unlink(path)


def create_app(allowed_hosts: list[str] | None = None) -> Starlette:
    """The playground's ASGI app. ``allowed_hosts``: the Host headers it answers (default:
    this machine's names only, which also stops DNS-rebinding pages from reaching it)."""
    _require()
    pg = Playground()
    routes = [
        Route("/", pg.index),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        WebSocketRoute("/ws", pg.ws),
        Route("/api/{sid}/csv", pg.upload, methods=["POST"]),
        Route("/api/{sid}/model.safetensors", pg.model),
        Route("/api/{sid}/trace.{fmt:str}", pg.trace),
    ]
    hosts = allowed_hosts or LOCAL_HOSTS
    app = Starlette(routes=routes,
                    middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)])
    app.state.playground = pg
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def _server(app: Any) -> Any:
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws_max_size=WS_MAX_BYTES,
                            ws="websockets-sansio")
    return uvicorn.Server(config)


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def serve(sock: socket.socket, allowed_hosts: list[str] | None = None) -> None:
    """Serve on the bound socket until Ctrl-C (uvicorn stops cleanly: open tabs are closed)."""
    _require()
    _server(create_app(allowed_hosts)).run(sockets=[sock])


@dataclass
class Running:
    url: str
    playground: Playground  # its ``sessions``, for tests that check the server's side


@contextlib.contextmanager
def running(host: str = "127.0.0.1", timeout: float = 10.0) -> Iterator[Running]:
    """A server in a background thread for tests and benchmarks; stops when the block ends."""
    _require()
    sock = bind(host, 0)
    app = create_app()
    server = _server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(int(timeout / 0.02)):
            if server.started:
                break
            threading.Event().wait(0.02)
        else:
            raise RuntimeError(f"playground server did not start within {timeout} s")
        yield Running(url_of(sock), app.state.playground)
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
