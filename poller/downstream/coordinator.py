"""One loop's turns on the downstreams it calls: its lane in each downstream's state row (a
:class:`~poller.downstream.share.Share` each), and the calls it may make (:class:`Turns`: a slot in every limit
the queue keeps).

    receive ─► received(n, asked) ─► acquire(units): refresh if due ─► next owned slot(s) ─► sleep ─► call
    a lane's demand: held back by its share (a full receive, its calls waiting for turns): inf; else what it
    used x 1.5
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from poller.aws.limits import SQS_MAX_WAIT_S
from poller.clock import Clock
from poller.config.shared import Downstream
from poller.downstream.share import HOLD_MAX_S, RECEIVE_LEAD_S, RETRY_S, SLOT_SPREAD, Share
from poller.downstream.shares import REFRESH_S
from poller.downstream.state import SharedStore
from poller.timing import DRAIN_MARGIN_S, RECEIVE_AHEAD_S, TURN_HORIZON_S

__all__ = ["HOLD_MAX_S", "Share", "Turns", "turns_for"]

PROBE_S = 1
"""The long poll that tells a queue that ran dry from a loaded SQS's one empty answer (Share.note)."""


class Turns:
    """The turns of one loop on every limit its queue keeps (thread-safe: records in parallel reserve in
    order). ``in_flight``: messages this loop may have in its target's hands at once (None: no bound)."""

    def __init__(self, shares: Sequence[Share], *, clock: Clock, in_flight: int | None):
        self.shares = list(shares)
        self.clock = clock
        self.in_flight = in_flight
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(in_flight) if in_flight is not None else None
        self.drain_ends: float | None = None  # the loop retires: when its shares end (drain())

    @property
    def counts(self) -> int:
        return sum(share.refreshes for share in self.shares)

    def received(self, count: int, asked: int) -> None:
        for share in self.shares:
            share.note(count, asked)

    def per_second(self) -> float:
        return min(share.rate_now() for share in self.shares)

    def poll_s(self) -> int:
        """The longest long poll: PROBE_S after one empty or short receive that followed full ones (if the
        queue ran dry, its lane's 0 and its slots go to the others a second later, not a whole poll later:
        20 s by default), else SQS's longest."""
        return PROBE_S if any(share.empty_once for share in self.shares) else SQS_MAX_WAIT_S

    def receive_limit(self, batch_size: int, *, per_record: bool) -> int:
        """Messages to receive: under a per-record dispatch, what the share pays for in RECEIVE_AHEAD_S; a
        whole batch no bigger than TURN_HORIZON_S of the share (and what the loop may have in flight)."""
        self._refresh_due()
        with self._lock:
            rate = self.per_second()
        # A whole batch spends its slots within the horizon; owned slots come unevenly (up to 1.5 x the mean gap).
        ahead = RECEIVE_AHEAD_S if per_record else TURN_HORIZON_S / SLOT_SPREAD
        if self.drain_ends is not None:  # retiring: no more than it can still spend
            ahead = min(ahead, max(0.0, self.drain_ends - DRAIN_MARGIN_S / 2 - self.clock.time()))
        size = max(1, min(batch_size, int(rate * ahead + 1e-9)))  # 20/s x 0.15 s / 1.5 is 1.99999...
        return size if self.in_flight is None or per_record else min(size, self.in_flight)

    def ready_in_s(self) -> float:
        """Seconds until the next call may start (0: now, or idle: receive to find work)."""
        self._refresh_due()
        with self._lock:
            if all(share.wanted() == 0 and share.rate_now() == 0 for share in self.shares):
                return 0.0
            found = self._search(1)
            # Receive a little before the turn: the messages are then in hand when the slot comes, not a
            # receive's latency after it (a slot that passes unused is lost to everyone).
            wait = (
                self._look_again_s()
                if found is None
                else max(0.0, min(REFRESH_S, found[0] - self.clock.time() - RECEIVE_LEAD_S))
            )
            for share in self.shares:
                share.waited_s += wait  # the loop sleeps this long for its turn before it receives
        return wait

    def acquire(self, units: int, may_start: Callable[[], bool]) -> bool:
        """Wait for a turn for a call carrying ``units`` messages; False (nothing spent) when none came within
        HOLD_MAX_S, or ``may_start()`` turned false while waiting."""
        started = self.clock.monotonic()
        while True:
            wait = self.try_take(units)
            if wait == 0:
                return True
            if not may_start() or not self.fits(units) or self.clock.monotonic() - started > HOLD_MAX_S:
                for share in self.shares:
                    share.backlog = True  # kept waiting: there is more than its share can pay for
                return False
            self.clock.sleep(wait)

    def turns_come_often(self) -> bool:
        """Its owned slots come at most RECEIVE_LEAD_S apart (SLOT_SPREAD mean gaps at its rate now): a batch
        received ahead finds a turn once the batch in hand is done. With a thinner share the loop would wait
        for its next turn and give that batch back (one receive more on each of its messages)."""
        return self.per_second() * RECEIVE_LEAD_S >= SLOT_SPREAD

    def fits(self, units: int) -> bool:
        """Whether a call carrying ``units`` can find that many slots within the horizon at the shares now
        (a batch received under a bigger share may not: it is given back, and the next receive is smaller)."""
        return units <= 1 or all(
            not share.usable() or units <= share.rate_now() * TURN_HORIZON_S / SLOT_SPREAD for share in self.shares
        )

    def try_take(self, units: int) -> float:
        """Spend a turn for ``units`` now if there is one (0), else the seconds to wait before asking again."""
        self._refresh_due()
        with self._lock:
            found = self._search(units)
            wait = self._look_again_s() if found is None else found[0] - self.clock.time()
            if found is not None and wait <= 0:
                for share, slot in zip(self.shares, found[1], strict=True):
                    share.used = slot
                return 0.0
            return max(0.001, min(wait, RETRY_S))

    def waited(self, seconds: float) -> None:
        """The loop's calls waited ``seconds`` for turns (the dispatcher's count: records that wait side by
        side on several threads are one loop waiting, not their threads' waits summed, which made the demo's
        handler-bound stage 2 look held back by its share, announce a backlog and keep twice what it used)."""
        with self._lock:
            for share in self.shares:
                share.waited_s += seconds

    def drain(self) -> float:
        """The loop is asked to retire: every lane announces 0 now (Share.drain), and the loop may go on
        spending until the first of their shares ends (epoch seconds; now: nothing to spend). Until then
        a receive asks only for what the share pays for before that end."""
        ends = []
        for share in self.shares:
            with self._lock:
                share.refreshing = True
            try:
                ends.append(share.drain(self._lock))
            finally:
                share.refreshing = False
        self.drain_ends = min(ends, default=self.clock.time())
        return self.drain_ends

    def rejoin(self) -> None:
        """The retire request was taken back: the lanes announce their demand again at their next refresh."""
        self.drain_ends = None
        for share in self.shares:
            share.rejoin()

    def leave(self) -> None:
        """The loop stops for good (retired): its lanes say so at once, rather than hold their share
        until they expire (the change still counts SWITCH_S later, as every change does)."""
        for share in self.shares:
            share.leave()

    @contextmanager
    def calling(self, units: int) -> Iterator[None]:
        """Hold ``units`` of this loop's in-flight permits (its part of max_in_flight) around a call."""
        held = 0 if self._slots is None else min(units, self.in_flight or 1)
        for _ in range(held):
            assert self._slots is not None
            self._slots.acquire()
        try:
            yield
        finally:
            for _ in range(held):
                assert self._slots is not None
                self._slots.release()

    def _refresh_due(self) -> None:
        """Refresh the lanes that are due, outside the turn lock (the loop's other threads go on meanwhile)."""
        with self._lock:
            due = [share for share in self.shares if not share.refreshing and share.due()]
            for share in due:
                share.refreshing = True
        for share in due:
            try:
                share.refresh(self._lock)
            finally:
                share.refreshing = False

    def _look_again_s(self) -> float:
        """Seconds until a search that found no turn may find one: the soonest change of any share's allocation."""
        return min(share.look_again_at() for share in self.shares) - self.clock.time()  # a Turns has a share

    def _search(self, units: int) -> tuple[float, list[int]] | None:
        """A time at which every limit has a turn for ``units`` (the tighter holds), and the slots spent."""
        at = self.clock.time()
        for _ in range(64):
            found = [share.turn_at(units, at) for share in self.shares]
            if any(f is None for f in found):
                return None
            latest = max(f[0] for f in found if f is not None)
            if all(f is not None and f[0] >= latest - 1e-9 for f in found) or latest == at:
                return latest, [f[1] for f in found if f is not None]
            at = latest
        return None


def turns_for(
    limits: Sequence[Downstream],
    store: SharedStore,
    *,
    queue: str,
    token: str,
    loop_id: str,
    generation: int = 0,
    weight: float,
    priority: int,
    clock: Clock,
    log_fields: dict[str, object],
) -> Turns:
    """A loop's turns on ``limits`` (a queue's shared downstream and its own rate limit): its lane in each
    is ``<queue key>#<token>``, so the loop's steps (one invocation each) keep one lane, and a loop revived on
    the token (a higher ``generation``: its step's) takes over its crashed predecessor's."""
    shares = [
        Share(
            store,
            limit,
            lane=f"{queue}#{token}",
            queue=queue,
            weight=weight,
            priority=priority,
            loop_id=loop_id,
            generation=generation,
            clock=clock,
            log_fields=log_fields,
        )
        for limit in limits
    ]
    bounds = [limit.in_flight_per_loop for limit in limits if limit.in_flight_per_loop is not None]
    return Turns(shares, clock=clock, in_flight=min(bounds) if bounds else None)
