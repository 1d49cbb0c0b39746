"""Small HTTP servers on loopback, for the sandbox's stand-ins (the Lambda API, the vendor API)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: eight record threads connecting at once, while the busy
    # process is slow to accept, overflowed it, and a dropped SYN is sent again only after 1 s (the demo's
    # stage-3 calls that took 1.06 s, each a second of the limit lost to its loop).
    request_queue_size = 128


def serve(
    on_post: Callable[[BaseHTTPRequestHandler], None], *, name: str, keep_alive: bool = False
) -> tuple[ThreadingHTTPServer, str]:
    """Serve POST requests with ``on_post`` on a free loopback port, in a daemon thread. Returns the
    server (for ``shutdown``) and its base URL. ``keep_alive``: HTTP/1.1, connections kept between requests
    (as a vendor's API keeps them; ``on_post`` must read the whole body and send a Content-Length)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

        def do_POST(self) -> None:
            on_post(self)

        def log_message(self, format: str, *args: Any) -> None:  # one line per request is noise here
            return

    server = _Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    host, port = server.server_address[:2]
    return server, f"http://{host!s}:{port}"


def stop(server: ThreadingHTTPServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()
