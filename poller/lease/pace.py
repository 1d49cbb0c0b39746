"""A loop's own pace: records it hands over a second when it is not waiting for its rate share, and the
share of its time it spent waiting, over roughly the last minute. The heartbeat the loop already makes
carries them onto its token row (``pace_rps``, ``pace_wait``, ``pace_at``: docs/contracts.md), so the
control plane learns how many loops a rate limit can keep busy at no extra AWS call (docs/scaling.md#limit-cap).

What a batch adds is one *cycle*: the time from the end of the previous batch (or the claim) to the end
of this one, covering the wait for a turn, the receive and the dispatch; and the part of it spent waiting
for the share or a downstream's pause (``BatchResult.waited_ms``)::

    |-- wait for share --|-- receive --|-- dispatch (records, waits between them) --|
    <------------------------------- cycle ------------------------------------------>
    pace_rps  = handed / (cycle - waited)    what one loop could do if it never waited
    pace_wait = waited / cycle               how much the share binds it

Empty receives are no work: a loop that rested on long polls before a backlog came (or between the
trickles of a thin one) sees its next batch arrive long after its previous one ended, and that time is
neither work nor waiting for the share. The batch therefore says when its receive returned
(``received_at``). A loop working through a backlog receives at once: between the end of one batch and
the next receive's answer it only waits for a turn (``waited_s`` counts it) and makes a call or two (at
most :data:`QUICK_RECEIVE_S`). When more time than that passed, the loop was idle, and its cycle begins
when the receive returned (a rested loop's turn is ready, so its waits come in the dispatch)::

    busy:  mark | wait for a turn | quick receive | dispatch ...... now    cycle: mark -> now
    idle:  mark ... empty long polls ... receive returns | dispatch now    cycle: received_at -> now

A new lane's probe, a batch dispatched before the loop had any share, only ends a cycle: what it did not
wait is the step's start-up (poller/loop/batch.py).

Older cycles fade with :data:`PACE_WINDOW_S`, so a handler that slows down shows within a minute. Pure
logic, no AWS; thread-safe (the keeper thread heartbeats while the loop thread adds a batch)."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

PACE_WINDOW_S = 60.0
"""Time constant of the fading sums: a cycle this old counts for 1/e of a new one."""

QUICK_RECEIVE_S = 1.0
"""The most non-waiting time between two batches of a loop that works through a backlog: a receive that
finds messages returns within tens of milliseconds (a long poll returns as soon as one is there), and the
wait for the previous batch's delete or a heartbeat is one call of the same order. Longer, the receive
waited for messages to arrive: the loop was idle, and none of that time is its work (the batch then
leaves out its receive's few milliseconds too: a small error once, not an idle hour counted as work)."""

MIN_RECORDS = 5.0
MIN_SPAN_S = 2.0
"""Below this many records handed over, or this much time seen (both faded), the figures say too little
to report. Not a minimum of unwaited time: a loop that waits 99 % for a small share works only a fraction
of a second a minute, and its figures matter most."""


@dataclass(frozen=True)
class PaceFigures:
    """What a heartbeat writes: ``rps`` records a second when not waiting, ``wait`` fraction in [0, 1]."""

    rps: float
    wait: float


class Pace:
    """Fading sums of one loop invocation's batches; ``started_at`` (monotonic) opens the first cycle."""

    def __init__(self, started_at: float, *, window_s: float = PACE_WINDOW_S):
        self.window_s = window_s
        self._mark = started_at
        self._handed = 0.0
        self._span_s = 0.0
        self._waited_s = 0.0
        self._lock = threading.Lock()

    def batch(self, *, handed: int, waited_s: float, received_at: float, now: float, sampled: bool = True) -> None:
        """One batch ended at ``now`` having handed over ``handed`` records, ``waited_s`` of its cycle waiting;
        its receive returned at ``received_at`` (monotonic; before the previous batch ended, for a batch
        received ahead). ``sampled`` False: the cycle only ends here (a new lane's probe: poller/loop/batch.py)."""
        with self._lock:
            if not sampled:
                self._mark = now
                return
            waited_s = max(0.0, waited_s)
            idle = received_at - self._mark - waited_s > QUICK_RECEIVE_S
            cycle = max(0.0, now - (received_at if idle else self._mark))
            self._mark = now
            fade = math.exp(-cycle / self.window_s)
            self._handed = self._handed * fade + handed
            self._span_s = self._span_s * fade + cycle
            self._waited_s = self._waited_s * fade + min(waited_s, cycle)

    def figures(self) -> PaceFigures | None:
        """The figures now, or None while too little work was seen to tell."""
        with self._lock:
            work_s = self._span_s - self._waited_s
            if self._handed < MIN_RECORDS or self._span_s < MIN_SPAN_S or work_s <= 0:
                return None
            return PaceFigures(rps=round(self._handed / work_s, 2), wait=round(self._waited_s / self._span_s, 3))
