"""One loop's turns on the downstreams it calls: its lane in each downstream's state row (refreshed by
:class:`Share`), and the calls it may make (:class:`Turns`: a slot in every limit the queue keeps).

    receive ─► received(n, asked) ─► acquire(units): refresh if due ─► next owned slot(s) ─► sleep ─► call
    a lane's demand: a backlog (a full receive, or a call that found no turn): inf; else what it used x 1.5

A loop whose view of a state row is older than VIEW_MAX_S (the row unreachable) makes no call; a loop whose
lane is held by another loop (its token taken over) makes none again: it has lost its lease.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from poller.clock import Clock
from poller.config.shared import Downstream
from poller.downstream.shares import (
    REFRESH_S,
    SKEW_S,
    SWITCH_S,
    TTL_S,
    VIEW_MAX_S,
    LaneRecord,
    Slots,
    allocate,
    alone,
    turn,
)
from poller.downstream.state import DROP_AFTER_S, LaneTaken, SharedStore
from poller.logs import log
from poller.timing import RECEIVE_AHEAD_S, TURN_HORIZON_S

RETRY_S = 0.5
"""A loop without a turn (no share yet, the state unreachable) looks again this often."""

RECEIVE_LEAD_S = 0.3
"""A loop waiting for its turn receives this long before it (a receive takes tens of milliseconds on AWS,
more on a loaded sandbox)."""

HOLD_MAX_S = 2 * SWITCH_S
"""The longest a received batch waits for a turn before it is given back (its loop keeps its demand)."""

_SLOT_SPREAD = 1.5  # the longest run of slots holding n of a lane's, over n mean gaps (golden-ratio spread)
_SEARCH_SLOTS = 200_000  # bound on one search for the next owned slot (a lane with a tiny share)


class Share:
    """One loop's lane on one downstream: its demand, its view of everyone's lanes, the slots it has used."""

    def __init__(
        self,
        store: SharedStore,
        limit: Downstream,
        *,
        lane: str,
        queue: str,
        weight: float,
        priority: int,
        loop_id: str,
        clock: Clock,
        log_fields: dict[str, object],
    ):
        self.store = store
        self.limit = limit
        self.lane = lane
        self.queue = queue
        self.weight = weight
        self.priority = priority
        self.loop_id = loop_id
        self.clock = clock
        self.log_fields = {**log_fields, "downstream": limit.name}
        self.view: list[LaneRecord] = []
        self.mine: LaneRecord | None = None
        self.viewed_at = -math.inf  # monotonic send time of the request that returned the view
        self.tried_at = -math.inf
        self.taken = False  # another loop holds the lane: this loop has lost its lease
        self.resumed = False  # the lane its previous step left has been read
        self.used = -(2**62)  # the last slot this loop spent
        self.backlog = False
        self.waited = False  # a call waited for a turn in this period: the share holds the loop back
        self.received = 0
        self.period_start = clock.monotonic()
        self.refreshes = 0

    # -- demand and refresh --------------------------------------------------------------------------

    def note(self, received: int, asked: int) -> None:
        # An empty receive: the queue ran dry, whatever came earlier in this period.
        self.received = self.received + received if received else 0
        self.backlog = received >= asked > 0

    def wanted(self) -> float:
        """What to announce: a backlog its share holds back (it waited for turns), or a first backlog after
        none: all it can get; a loop that keeps up by itself (a slow handler, a trickle): half again what it
        used; nothing came: 0."""
        if self.backlog and (self.waited or self.mine is None or self.mine.demand == 0):
            return math.inf
        if self.received == 0:
            return 0.0
        elapsed = max(1.0, self.clock.monotonic() - self.period_start)
        return max(1.0, 1.5 * self.received / elapsed)

    def due(self) -> bool:
        """A refresh is due: the view is old and the lane has (or wants) a demand, or it wants one now."""
        if self.taken:
            return False
        now = self.clock.monotonic()
        if now - self.tried_at < RETRY_S:
            return False
        counted = self.mine is not None and (self.mine.demand > 0 or self.mine.prev > 0)
        if now - self.viewed_at >= REFRESH_S and (counted or self.wanted() > 0):
            return True
        settled = self.mine is not None and not self.mine.pending(int(self.clock.time() * 1000))
        # Nothing came, or a first message: say so now (the change still counts only SWITCH_S later).
        if settled and self.mine is not None and (self.wanted() == 0) == (self.mine.demand > 0):
            return True
        return self.wanted() > 0 and not counted

    def refresh(self) -> None:
        now_ms = int(self.clock.time() * 1000)
        sent = self.clock.monotonic()
        self.tried_at = sent
        if not self.resumed:
            self._resume(now_ms)
        record = self._next_record(now_ms)
        # Only a fresh view may say a lane is long gone: in an old one a live lane looks old too.
        fresh = sent - self.viewed_at < VIEW_MAX_S
        drop = [lane.lane for lane in self.view if fresh and lane.seen_ms < now_ms - DROP_AFTER_S * 1000]
        self.refreshes += 1
        try:
            lanes = self.store.refresh(self.limit.name, record, drop=drop)
        except LaneTaken as exc:
            # Held, then lost: this loop's token was taken over. Never held: an old loop's lane, until it expires.
            self.taken = self.mine is not None
            log("warning", "lane_taken", error=str(exc), lost=self.taken, **self.log_fields)
            return
        except Exception as exc:  # no fresh view: no calls once the old one is VIEW_MAX_S old
            log("warning", "share_refresh_failed", error=repr(exc), **self.log_fields)
            return
        mine = next((lane for lane in lanes if lane.lane == self.lane), None)
        if mine is None or mine.loop_id != self.loop_id:
            # A loop that finds no lane of its own cannot know its share: it has lost its lease (issue 14).
            self.taken = True
            log("warning", "lane_missing", **self.log_fields)
            return
        self.view, self.mine, self.viewed_at = lanes, mine, sent
        self.received, self.period_start, self.waited = 0, sent, False

    def leave(self) -> None:
        self.received, self.backlog = 0, False
        if self.mine is not None and not self.taken and (self.mine.demand > 0 or self.mine.prev > 0):
            self.refresh()

    def _resume(self, now_ms: int) -> None:
        """A loop's next step (a new invocation) goes on with the lane its last step left, if it is still
        live: one read at the first refresh, so that a recursion does not wait SWITCH_S for its share again."""
        try:
            lanes = self.store.read(self.limit.name)
        except Exception as exc:  # then as a new lane (its share a switch later): never more than that
            log("warning", "share_read_failed", error=repr(exc), **self.log_fields)
            return
        self.resumed = True
        mine = next((lane for lane in lanes if lane.lane == self.lane and lane.loop_id == self.loop_id), None)
        if mine is not None and now_ms < mine.seen_ms + (TTL_S - SKEW_S) * 1000:
            self.mine = mine

    def _next_record(self, now_ms: int) -> LaneRecord:
        want = self.wanted()
        old = self.mine
        fresh = old is None or now_ms >= old.seen_ms + (TTL_S - SKEW_S) * 1000
        switch = now_ms + int(SWITCH_S * 1000)
        if fresh:
            demand, prev, switch_ms = want, 0.0, switch if want > 0 else now_ms
        else:
            assert old is not None
            if old.pending(now_ms):  # one change at a time: the next waits until this one counts
                demand, prev, switch_ms = old.demand, old.prev, old.switch_ms
            elif not _changed(old.demand, want):
                demand, prev, switch_ms = old.demand, old.demand, old.switch_ms
            else:
                demand, prev, switch_ms = want, old.demand, switch
        return LaneRecord(
            lane=self.lane,
            queue=self.queue,
            weight=self.weight,
            priority=self.priority,
            demand=demand,
            prev=prev,
            switch_ms=switch_ms,
            seen_ms=now_ms,
            loop_id=self.loop_id,
        )

    # -- turns ---------------------------------------------------------------------------------------

    def usable(self) -> bool:
        return not self.taken and self.clock.monotonic() - self.viewed_at < VIEW_MAX_S

    def rate_now(self) -> float:
        """This loop's messages a second now (0 without a usable view)."""
        if not self.usable():
            return 0.0
        return self._shares(int(self.clock.time() * 1000)).get(self.lane, 0.0)

    def _shares(self, now_ms: int) -> dict[str, float]:
        if self.mine is not None and self.mine.demand > 0 and alone(self.view, self.lane, now_ms):
            return {self.lane: self.limit.rate_limit}
        return allocate(self.view, self.limit.rate_limit, now_ms)

    def turn_at(self, units: int, not_before_s: float) -> tuple[float, int] | None:
        """The earliest epoch time at or after ``not_before_s`` this loop may call with ``units``, and the
        slot it spends up to; None if not before the view or the allocation may change."""
        if not self.usable():
            return None
        now_ms = int(not_before_s * 1000)
        shares = self._shares(now_ms)
        mine = shares.get(self.lane, 0.0)
        if mine <= 0:
            return None
        slots = Slots.of(self.limit.rate_limit, shares)
        valid_s = min(self._next_change_s(now_ms), self.clock.time() + VIEW_MAX_S - self._age_s())
        horizon = TURN_HORIZON_S  # a call never spends a slot older than this, whatever it carries
        limit = min(_SEARCH_SLOTS, max(1, math.ceil((valid_s - not_before_s + horizon) * slots.rate)))
        slot = turn(slots, self.lane, units=units, after=self.used, now_s=not_before_s, horizon_s=horizon, limit=limit)
        if slot is None:
            return None
        at = max(not_before_s, slots.start_of(slot))
        return (at, slot) if at < valid_s else None

    def _age_s(self) -> float:
        return self.clock.monotonic() - self.viewed_at

    def _next_change_s(self, now_ms: int) -> float:
        """When the allocation may next change: the next switch or expiry of any lane."""
        moments = [m for lane in self.view for m in (lane.switch_ms, lane.seen_ms + TTL_S * 1000) if m > now_ms]
        return min(moments, default=now_ms + 10**9) / 1000


class Turns:
    """The turns of one loop on every limit its queue keeps (thread-safe: records in parallel reserve in
    order). ``in_flight``: messages this loop may have in its target's hands at once (None: no bound)."""

    def __init__(self, shares: Sequence[Share], *, clock: Clock, in_flight: int | None):
        self.shares = list(shares)
        self.clock = clock
        self.in_flight = in_flight
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(in_flight) if in_flight is not None else None

    @property
    def counts(self) -> int:
        return sum(share.refreshes for share in self.shares)

    def received(self, count: int, asked: int) -> None:
        for share in self.shares:
            share.note(count, asked)

    def per_second(self) -> float:
        return min(share.rate_now() for share in self.shares)

    def receive_limit(self, batch_size: int, *, per_record: bool) -> int:
        """Messages to receive: under a per-record dispatch, what the share pays for in RECEIVE_AHEAD_S; a
        whole batch no bigger than TURN_HORIZON_S of the share (and what the loop may have in flight)."""
        with self._lock:
            self._refresh_due()
            rate = self.per_second()
        # A whole batch spends its slots within the horizon; owned slots come unevenly (up to 1.5 x the mean gap).
        ahead = RECEIVE_AHEAD_S if per_record else TURN_HORIZON_S / _SLOT_SPREAD
        size = max(1, min(batch_size, int(rate * ahead)))
        return size if self.in_flight is None or per_record else min(size, self.in_flight)

    def ready_in_s(self) -> float:
        """Seconds until the next call may start (0: now, or idle: receive to find work)."""
        with self._lock:
            self._refresh_due()
            if all(share.wanted() == 0 and share.rate_now() == 0 for share in self.shares):
                return 0.0
            found = self._search(1)
        if found is None:
            return RETRY_S
        # Receive a little before the turn: the messages are then in hand when the slot comes, not a
        # receive's latency after it (a slot that passes unused is lost to everyone).
        return max(0.0, min(REFRESH_S, found[0] - self.clock.time() - RECEIVE_LEAD_S))

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

    def fits(self, units: int) -> bool:
        """Whether a call carrying ``units`` can find that many slots within the horizon at the shares now
        (a batch received under a bigger share may not: it is given back, and the next receive is smaller)."""
        return units <= 1 or all(
            not share.usable() or units <= share.rate_now() * TURN_HORIZON_S / _SLOT_SPREAD for share in self.shares
        )

    def try_take(self, units: int) -> float:
        """Spend a turn for ``units`` now if there is one (0), else the seconds to wait before asking again."""
        with self._lock:
            self._refresh_due()
            found = self._search(units)
            wait = RETRY_S if found is None else found[0] - self.clock.time()
            if found is not None and wait <= 0:
                for share, slot in zip(self.shares, found[1], strict=True):
                    share.used = slot
                return 0.0
            for share in self.shares:
                share.waited = True
            return max(0.001, min(wait, RETRY_S))

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
        for share in self.shares:
            if share.due():
                share.refresh()

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


def _changed(old: float, new: float) -> bool:
    """A demand worth announcing: to or from zero or a backlog, or by more than a quarter."""
    if old == new:
        return False
    if old == 0 or new == 0 or math.isinf(old) or math.isinf(new):
        return True
    return not 0.8 <= new / old <= 1.25


def turns_for(
    limits: Sequence[Downstream],
    store: SharedStore,
    *,
    queue: str,
    token: str,
    loop_id: str,
    weight: float,
    priority: int,
    clock: Clock,
    log_fields: dict[str, object],
) -> Turns:
    """A loop's turns on ``limits`` (a queue's shared downstream and its own rate limit): its lane in each
    is ``<queue key>#<token>``, so the loop's steps (one invocation each) keep one lane."""
    shares = [
        Share(
            store,
            limit,
            lane=f"{queue}#{token}",
            queue=queue,
            weight=weight,
            priority=priority,
            loop_id=loop_id,
            clock=clock,
            log_fields=log_fields,
        )
        for limit in limits
    ]
    bounds = [limit.in_flight_per_loop for limit in limits if limit.in_flight_per_loop is not None]
    return Turns(shares, clock=clock, in_flight=min(bounds) if bounds else None)
