"""A stand-in for a vendor's HTTP API on loopback: answers each POST after a fixed latency and counts the
calls, with their times, per path (what a rate limit downstream would see)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class VendorApi:
    def __init__(self, latency_s: float = 0.03):
        self.latency_s = latency_s
        self.calls: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(api.latency_s)
                with api._lock:
                    api.calls.setdefault(self.path, []).append(time.monotonic())
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="vendor-api", daemon=True).start()
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def count(self) -> int:
        with self._lock:
            return sum(len(times) for times in self.calls.values())

    def max_rate(self, window_s: float = 5.0) -> dict[str, float]:
        """The highest calls per second over any ``window_s`` window, per path."""
        with self._lock:
            snapshot = {path: sorted(times) for path, times in self.calls.items()}
        rates = {}
        for path, times in snapshot.items():
            best, start = 0, 0
            for end, moment in enumerate(times):
                while moment - times[start] > window_s:
                    start += 1
                best = max(best, end - start + 1)
            rates[path] = round(best / window_s, 1)
        return rates
