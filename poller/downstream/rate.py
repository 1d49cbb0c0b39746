"""One loop's share of its queue's ``rate_limit``: the limit divided by the queue's live loops, spent with
a pacer that lets a loop run at most one dispatch unit ahead (docs/downstream.md has the arithmetic).

    scale-up n -> m loops:   row created (t0) ─► new loop starts (t1) ─► holds back R + one interval
    old loops:               count read at tq < t0 is used until tq + R, then re-read (m): share r/m
    so the new loop spends only after every old loop has shrunk its share.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from poller.clock import Clock
from poller.logs import log
from poller.timing import RECEIVE_AHEAD_S

SHARE_REFRESH_S = 2.0
"""A busy, rate-limited loop re-counts its queue's loops when its count is older than this (one Query);
a loop that just started waits this long (plus one interval) before its first call, so that the loops
already running have seen it and shrunk their shares. Idle loops never count."""


class RateShare:
    """Paces one loop's calls to ``rate_s / live loops`` a second.

    ``count_loops`` returns the queue's live loop count (its token rows); it is called only when a call
    is about to be paid for and the last count is older than :data:`SHARE_REFRESH_S`. If it fails, the
    share falls back to ``rate_s / max_loops`` (never too much). ``fresh_loop``: this invocation is a new
    loop's first step, which holds back (see the module docstring). Thread-safe: concurrent records
    reserve their turns in order."""

    def __init__(
        self,
        *,
        rate_s: float,
        max_loops: int,
        count_loops: Callable[[], int],
        clock: Clock,
        fresh_loop: bool,
        log_fields: dict[str, object],
    ):
        self.rate_s = rate_s
        self.max_loops = max_loops
        self.count_loops = count_loops
        self.clock = clock
        self.log_fields = log_fields
        started = clock.monotonic()
        self._hold_until = started + SHARE_REFRESH_S if fresh_loop else None
        self._next_at = self._hold_until or started  # monotonic time of the next call this loop may make
        self._loops: int | None = None
        self._counted_at = -math.inf
        self._lock = threading.Lock()
        self.counts = 0  # Queries made (visible in tests and in the loop's outcome)

    @property
    def per_second(self) -> float:
        """The share now (before any count: the smallest possible one)."""
        return self.rate_s / max(1, self._loops if self._loops is not None else self.max_loops)

    def receive_limit(self, batch_size: int) -> int:
        """How many messages to receive for record-by-record dispatch: what the share pays for soon."""
        return max(1, min(batch_size, int(self.per_second * RECEIVE_AHEAD_S)))

    def ready_in_s(self) -> float:
        """Seconds until this loop may make its next call (0 if it may now)."""
        return max(0.0, self._next_at - self.clock.monotonic())

    def reserve(self, units: int = 1) -> float:
        """Book the next turn for a call carrying ``units`` messages; returns the monotonic time it may be
        made (now or later). The turn after it comes ``units / share`` seconds later."""
        with self._lock:
            self._refresh()
            at = max(self._next_at, self.clock.monotonic())
            self._next_at = at + units / self.per_second
            return at

    def acquire(self, units: int = 1) -> None:
        """Wait for the next turn (see :meth:`reserve`)."""
        wait = self.reserve(units) - self.clock.monotonic()
        if wait > 0:
            self.clock.sleep(wait)

    def _refresh(self) -> None:
        now = self.clock.monotonic()
        if now - self._counted_at < SHARE_REFRESH_S:
            return
        self._counted_at = now  # the count is as old as the request's send time, never younger
        self.counts += 1
        try:
            loops = self.count_loops()
        except Exception as exc:  # the smallest share is always safe; the next turn counts again
            log("warning", "loop_count_failed", error=repr(exc), share_of=self.max_loops, **self.log_fields)
            loops = self.max_loops
        first = self._loops is None
        self._loops = max(1, loops)
        if first and self._hold_until is not None:
            # Old loops may still spend their bigger share until their count is R old, and their last turn
            # at it reaches one of their intervals (shorter than ours) beyond: start after both.
            self._next_at = max(self._next_at, self._hold_until + 1 / self.per_second)
