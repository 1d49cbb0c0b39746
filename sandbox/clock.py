"""A clock that moves only when told: simulated time for the tests and the benchmarks (a loop reads its
time through the injected ``poller.clock.Clock``, so it runs unchanged on this one)."""

from __future__ import annotations

import threading


class FakeClock:
    """A clock that moves only when told (or when something sleeps on it)."""

    def __init__(self, start: float = 1_800_000_000.0):
        self._epoch = start
        self._mono = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        return self._epoch + self._mono

    def monotonic(self) -> float:
        return self._mono

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._mono += seconds
