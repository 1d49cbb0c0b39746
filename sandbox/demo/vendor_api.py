"""A stand-in for a vendor's HTTP API on loopback: answers each POST after a fixed latency and counts the
calls, with their times, per path (what a rate limit downstream would see), and the job ids it was sent
(how a demo whose handlers run in other processes, `demo --deployed`, counts what was processed)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sandbox import loopback


class VendorApi:
    def __init__(self, latency_s: float = 0.03):
        self.latency_s = latency_s
        self.calls: dict[str, list[float]] = {}
        self.job_ids: Counter[str] = Counter()  # the "id" of each JSON body answered 200
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        self._server, url = loopback.serve(self._answer, name="vendor-api", keep_alive=True)
        return url

    def _answer(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        time.sleep(self.latency_s)
        try:
            job = json.loads(body or b"null")
        except ValueError:
            job = None
        with self._lock:
            self.calls.setdefault(request.path, []).append(time.monotonic())
            if isinstance(job, dict) and "id" in job:
                self.job_ids[str(job["id"])] += 1
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
