"""``glassgrad playground``: the browser playground on this machine.

    glassgrad playground [--port N] [--host 127.0.0.1] [--no-browser]
"""

from __future__ import annotations

import argparse
import sys
import threading
import webbrowser

from . import CLIError
from .validate import whole

LOCAL = ("127.0.0.1", "localhost", "::1")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("playground", help="train a network in the browser, every number shown",
                       description="Serve the playground on this machine and open it in the "
                                   "browser: pick data and layers, press play, click a unit or "
                                   "a weight for its forward value, δ, gradient and update. "
                                   "Ctrl-C stops it.")
    p.add_argument("--port", type=_port, default=0,
                   help="port to listen on (default: a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--no-browser", action="store_true", help="print the URL, open nothing")
    p.set_defaults(func=run)


def _port(text: str) -> int:
    n = whole(0, "a port number is 0 (any free port) or more")(text)
    if n > 65535:
        raise argparse.ArgumentTypeError(f"--port {n}: a port is at most 65535")
    return n


def run(args: argparse.Namespace) -> int:
    from ..playground import server

    local = args.host in LOCAL
    if not local:
        print(f"glassgrad: warning: --host {args.host} lets other machines on the network "
              f"open this playground and run training on this computer; there is no "
              f"password. Use it only on a network you trust.", file=sys.stderr)
    server._require()
    try:
        sock = server.bind(args.host, args.port)
    except OSError as e:
        raise CLIError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}. Fix: "
                       f"another --port (or none, for a free one).") from None
    url = server.url_of(sock)
    print(f"glassgrad playground: {url}  (Ctrl-C to stop)", flush=True)
    if not args.no_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    try:
        server.serve(sock, None if local else ["*"])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    print("glassgrad playground: stopped", file=sys.stderr)
    return 0
