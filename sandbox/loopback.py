"""Small HTTP servers on loopback, for the sandbox's stand-ins (the Lambda API, the vendor API)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve(on_post: Callable[[BaseHTTPRequestHandler], None], *, name: str) -> tuple[ThreadingHTTPServer, str]:
    """Serve POST requests with ``on_post`` on a free loopback port, in a daemon thread. Returns the
    server (for ``shutdown``) and its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            on_post(self)

        def log_message(self, format: str, *args: Any) -> None:  # one line per request is noise here
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    host, port = server.server_address[:2]
    return server, f"http://{host!s}:{port}"


def stop(server: ThreadingHTTPServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()
