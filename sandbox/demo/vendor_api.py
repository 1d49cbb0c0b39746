"""A stand-in for a vendor's HTTP API on loopback: answers each POST after a fixed latency and counts the
calls, with their times, per path (what a rate limit downstream would see)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sandbox import loopback


class VendorApi:
    def __init__(self, latency_s: float = 0.03):
        self.latency_s = latency_s
        self.calls: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        self._server, url = loopback.serve(self._answer, name="vendor-api")
        return url

    def _answer(self, request: BaseHTTPRequestHandler) -> None:
        request.rfile.read(int(request.headers.get("Content-Length") or 0))
        time.sleep(self.latency_s)
        with self._lock:
            self.calls.setdefault(request.path, []).append(time.monotonic())
        request.send_response(200)
        request.send_header("Content-Length", "2")
        request.end_headers()
        request.wfile.write(b"ok")

    def stop(self) -> None:
        loopback.stop(self._server)

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
