"""The playground's web server without a browser: Starlette's test client drives the routes
and the WebSocket protocol (hello, replies, state pushes, errors, exports, uploads)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="needs starlette, which is not installed: "
                                 'pip install "glassgrad[playground]"')
pytest.importorskip("httpx", reason="needs httpx, which is not installed: "
                                 'pip install "glassgrad[test]"')
from starlette.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

import glassgrad as gg  # noqa: E402
from glassgrad.playground import server  # noqa: E402

BASE = "http://127.0.0.1"


@pytest.fixture
def client():
    app = server.create_app(allowed_hosts=["127.0.0.1", "testserver"])
    with TestClient(app, base_url=BASE) as c:
        c.playground = app.state.playground
        yield c


def receive_until(ws, kind: str, limit: int = 50) -> dict:
    for _ in range(limit):
        msg = ws.receive_json()
        if msg["type"] == kind:
            return msg
    raise AssertionError(f"no {kind!r} message in {limit}")


def open_tab(client):
    ws = client.websocket_connect("/ws")
    ws.__enter__()
    hello = ws.receive_json()
    assert hello["type"] == "hello" and "seeds-xor" in hello["presets"]
    assert ws.receive_json()["type"] == "config"
    assert ws.receive_json()["type"] == "data"
    return ws, hello["session"]


def test_page_is_served_with_a_policy_that_keeps_it_offline(client):
    r = client.get("/")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    refs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert refs and all(u.startswith("/static/") or u.startswith("data:") for u in refs), refs
    for u in refs:
        if u.startswith("/static/"):
            assert client.get(u).status_code == 200, u
    # the scripts import only each other, never a URL elsewhere
    static = Path(server.STATIC)
    for js in static.glob("*.js"):
        for target in re.findall(r'from\s+"([^"]+)"', js.read_text()):
            assert target.startswith("./") and (static / target[2:]).exists()


def test_other_hosts_and_origins_are_refused(client):
    assert client.get("/", headers={"host": "evil.example"}).status_code == 400
    with pytest.raises(WebSocketDisconnect), client.websocket_connect(
            "/ws", headers={"origin": "http://evil.example"}) as ws:
        ws.receive_json()


def test_a_step_over_the_socket_pushes_the_new_state(client):
    ws, _ = open_tab(client)
    try:
        assert receive_until(ws, "state")["step"] == 0
        ws.send_json({"type": "step"})
        state = receive_until(ws, "state")
        while state["step"] == 0:
            state = receive_until(ws, "state")
        assert state["step"] == 1 and not state["playing"]
        assert len(state["units"][-1]) == 1 and state["weights"][0]["W"]
    finally:
        ws.__exit__(None, None, None)


@pytest.mark.parametrize("frame", [
    "{not json", json.dumps({"type": "inspect", "what": "unit", "layer": 99, "unit": 0}),
    json.dumps({"type": "config", "config": {"lr": "abc"}}), "x" * 100_000, b"\x00\xff",
])
def test_a_bad_frame_gets_an_error_and_the_tab_keeps_working(client, frame):
    ws, _ = open_tab(client)
    try:
        if isinstance(frame, bytes):
            ws.send_bytes(frame)
        else:
            ws.send_text(frame)
        err = receive_until(ws, "error")
        assert err["message"]
        ws.send_json({"type": "inspect", "what": "unit", "layer": 1, "unit": 0, "sample": 0})
        view = receive_until(ws, "inspect")
        assert view["values"]["z"] is not None
    finally:
        ws.__exit__(None, None, None)


def test_two_tabs_have_their_own_sessions(client):
    a, sid_a = open_tab(client)
    b, sid_b = open_tab(client)
    try:
        assert sid_a != sid_b
        a.send_json({"type": "config", "config": {"lr": "0.5", "layers": "3"}})
        assert receive_until(a, "config")["sizes"] == [2, 3, 1]
        a.send_json({"type": "step"})
        receive_until(a, "state")
        sessions = client.playground.sessions
        assert sessions[sid_b].cfg.lr == 0.03 and sessions[sid_b].steps == 0
        assert sessions[sid_a].cfg.lr == 0.5
    finally:
        a.__exit__(None, None, None)
        b.__exit__(None, None, None)
    assert sid_a not in client.playground.sessions  # a closed tab's session is dropped


def test_csv_upload_and_its_errors(client):
    ws, sid = open_tab(client)
    try:
        body = "x1,x2,label\n" + "\n".join(f"{i % 4},{i % 3},{i % 2}" for i in range(30))
        r = client.post(f"/api/{sid}/csv?name=mine.csv", content=body)
        assert r.status_code == 200
        assert [m["type"] for m in r.json()["messages"]] == ["config", "data"]
        assert client.playground.sessions[sid].cfg.data == "csv"
        r = client.post(f"/api/{sid}/csv?name=bad.csv", content="x1,x2,y\n1,abc,0\n")
        assert r.status_code == 400 and "'abc' is not a number" in r.json()["message"]
        assert client.playground.sessions[sid].cfg.data == "csv"  # the good one stays
        r = client.post(f"/api/{sid}/csv", content=b"1" * (2 << 20))
        assert r.status_code == 413 and "more than" in r.json()["message"]
        r = client.post("/api/nope/csv", content=body)
        assert r.status_code == 404 and "reload the page" in r.json()["message"]
    finally:
        ws.__exit__(None, None, None)


def test_exports_are_the_library_formats(client, tmp_path):
    ws, sid = open_tab(client)
    try:
        r = client.get(f"/api/{sid}/model.safetensors")
        assert r.status_code == 200
        path = tmp_path / "m.safetensors"
        path.write_bytes(r.content)
        model = gg.serialization.load_model(str(path))
        live = client.playground.sessions[sid].b.model
        for (n, p), (m, q) in zip(model.named_parameters(), live.named_parameters()):
            assert n == m and (p.numpy() == q.numpy()).all()
        md = client.get(f"/api/{sid}/trace.md")
        assert md.status_code == 200 and "δ" in md.text
        doc = client.get(f"/api/{sid}/trace.json").json()
        gg.explain.validate(doc)
        assert client.get(f"/api/{sid}/trace.exe").status_code == 404
    finally:
        ws.__exit__(None, None, None)


def test_a_state_push_never_lands_between_a_new_shape_and_its_data(client, monkeypatch):
    # Each socket write yields for longer than the pusher's frame interval, so the state
    # pusher is always queued on the socket when the config reply goes out. The page lays out
    # a new network shape on "data"; a state for the new shape arriving between "config" and
    # "data" used to meet edges of the old shape ("Cannot read properties of undefined").
    import anyio
    from starlette.websockets import WebSocket

    real = WebSocket.send_text

    async def slow_send_text(self, text):
        await anyio.sleep(2 / server.FPS)
        await real(self, text)

    monkeypatch.setattr(WebSocket, "send_text", slow_send_text)
    ws, _ = open_tab(client)
    try:
        for preset in ("seeds-xor", "deep-spiral", "seeds-xor"):
            ws.send_json({"type": "preset", "name": preset})
            kinds = []
            while "data" not in kinds:
                kinds.append(ws.receive_json()["type"])
            assert kinds[kinds.index("config") + 1] == "data", kinds
    finally:
        ws.__exit__(None, None, None)
