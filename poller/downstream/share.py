"""One loop's lane on one downstream (:class:`Share`): the demand it announces, its view of everyone's lanes
(refreshed with one UpdateItem: :mod:`poller.downstream.state`), and the slots its share owns. The turns of a
loop on all its limits together are :class:`poller.downstream.coordinator.Turns`.

A loop whose view of a state row is older than VIEW_MAX_S (the row unreachable) makes no call; a loop whose
lane is held by another loop (its token taken over) makes none again: it has lost its lease.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext

from poller.clock import Clock
from poller.config.shared import Downstream
from poller.downstream.shares import (
    EPOCH_S,
    REFRESH_MIN_S,
    SKEW_S,
    SWITCH_S,
    TTL_S,
    VIEW_MAX_S,
    Gift,
    LaneRecord,
    Slots,
    allocate,
    alone,
    changed,
    gifts,
    inherited,
    moments,
    refresh_s,
    spare_for,
    turn,
)
from poller.downstream.state import DROP_AFTER_S, LaneTaken, SharedStore
from poller.logs import log
from poller.timing import TURN_HORIZON_S

RETRY_S = 0.5
"""A loop without a turn (no share yet, the state unreachable) looks again this often."""

RECEIVE_LEAD_S = 0.3
"""A loop waiting for its turn receives this long before it (tens of ms on AWS, more on a loaded sandbox)."""

HELD_FRACTION = 0.2
"""A loop whose calls waited for turns this much of a period is held back by its share (it announces a
backlog: all it can get); one that waited less keeps up by itself and announces what it uses, x 1.5."""

MEASURE_S = 1.0
"""A period shorter than this (a step's first receive) tells nothing new of a backlog: the lane keeps its demand."""

HOLD_MAX_S = 2 * SWITCH_S
"""The longest a received batch waits for a turn before it is given back (its loop keeps its demand)."""

SLOT_SPREAD = 1.5  # the longest run of slots holding n of a lane's, over n mean gaps (golden-ratio spread)
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
        generation: int,
        clock: Clock,
        log_fields: dict[str, object],
    ):
        self.store = store
        self.generation = generation
        self.predecessor: LaneRecord | None = None  # the lane of the loop this one revived, to take over
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
        self.empty_once = False  # the last receive was empty or short, after a full one
        self.dry = False  # the last receive was empty, after another short one (not a step's first): nothing in hand
        self.lean = 0  # receives in a row that found fewer messages than asked
        self.gave_until_ms = 0  # it gave its slots to the lanes held back until then (LaneRecord.gives_after)
        self.waited_s = 0.0  # the loop's waits for turns in this period (Turns.waited)
        self.received = 0
        self.noted = False  # this step has received at least once
        self.period_start = clock.monotonic()
        self.refreshes = 0
        self.refreshing = False  # a thread of its loop is refreshing it (outside the turn lock)
        self.leaving = False  # its loop retires: the last write releases the lane
        self.draining = False  # its loop retires once its share has gone to the others (drain())

    # -- demand and refresh --------------------------------------------------------------------------

    def note(self, received: int, asked: int) -> None:
        # One empty receive right after a full one is not yet a dry queue: a loaded SQS (moto, in the
        # sandbox) answers a long poll empty now and then with hundreds of messages visible, and a lane that
        # said 0 for it would lose its share for two switches (the demo's main loss after the slow stages).
        # Nor is a short receive right after a full one, on a lane that announces a backlog: a queue that
        # runs dry ends with one, and a lane that announced what it used then (x 1.5) went to 0 only a
        # switch later ("one change at a time"): the demo's draining stages held a share for two switches.
        # (Only to keep a backlog announced: a lane that announces a trickle does not grow on a short receive.)
        self.noted, self.lean = True, self.lean + 1 if received < asked else 0
        announced = self.mine is not None and math.isinf(self.mine.demand)
        if self.backlog and not self.empty_once and (received == 0 or (received < asked and announced)):
            self.empty_once, self.dry, self.received = True, False, self.received + received
            return
        self.empty_once, self.dry = False, received == 0 and self.lean >= 2
        self.received = self.received + received if received else 0  # empty: dry, whatever came before
        self.backlog = received >= asked > 0

    def wanted(self) -> float:
        """What to announce: a backlog its share holds back (its calls spent at least HELD_FRACTION of the
        period waiting for turns), or a first backlog after none: all it can get; a loop that keeps up by
        itself, or has a backlog it cannot work faster (a slow handler, a trickle, a small batch a receive's
        latency bounds): half again what it used, so that what it leaves goes to the others; nothing: 0."""
        if self.draining or self.leaving:
            return 0.0  # its loop retires: what it still spends is the share it holds until its 0 counts
        elapsed = self.clock.monotonic() - self.period_start
        if self.backlog and (self.mine is None or self.mine.demand == 0 or self.waited_s >= HELD_FRACTION * elapsed):
            return math.inf
        # Nothing new to tell, as it was: too short a period, a step's first one (it began before the step's
        # claim: its waits are not all counted), or one with nothing received yet (a batch in hand, or an
        # empty receive not taken for a dry queue). A busy lane that said less here lost its share for a
        # switch or two at every recursion of the demo's loops.
        if self.backlog and (elapsed < MEASURE_S or self.received == 0 or self.viewed_at == -math.inf):
            assert self.mine is not None
            return self.mine.demand
        elapsed = max(1.0, elapsed)
        if self.received == 0:
            return 0.0
        return max(1.0, 1.5 * self.received / elapsed)

    def due(self) -> bool:
        """A refresh is due: the view is old and the lane has (or wants) a demand, or it wants one now."""
        if self.taken:
            return False
        now, now_ms = self.clock.monotonic(), int(self.clock.time() * 1000)
        if now - self.tried_at < RETRY_S:
            return False
        if not self.resumed and self.noted:
            # A step's first receive is in: read the lane its last step left. A step that finds its queue
            # dry must take back a backlog its last step announced (else the lane holds its share until it
            # expires, TTL_S: the demo's idle stage-2 lanes held 20 of its 50 a second for 12 s that way).
            return True
        counted = self.mine is not None and (self.mine.demand > 0 or self.mine.prev > 0)
        age = now - self.viewed_at  # the lanes are counted only once the view is old enough for any period
        old = age >= REFRESH_MIN_S and age >= refresh_s(self.view, self.limit.rate_limit, now_ms)
        if old and (counted or self.wanted() > 0):
            return True
        mine = None if self.mine is None else self.mine.settled(now_ms)
        room = mine is not None and (not mine.pending(now_ms) or mine.then is None)  # for one more change
        # Nothing came, or a first message: say so now (the change still counts only SWITCH_S later).
        if room and mine is not None and (self.wanted() == 0) == (mine.demand > 0):
            return True
        return self.wanted() > 0 and not counted

    def refresh(self, lock: AbstractContextManager[object] | None = None) -> None:
        """Write this lane, read everyone's. The state row's calls run outside ``lock`` (the loop's turn
        lock): a refresh takes a round trip (240 ms on a loaded sandbox), and meanwhile the loop's other
        threads spend with the view they have, within its age (VIEW_MAX_S)."""
        lock = lock or nullcontext()
        with lock:
            now_ms = int(self.clock.time() * 1000)
            sent = self.clock.monotonic()
            self.tried_at = sent
        if not self.resumed:
            self._resume(now_ms, lock)
        with lock:
            if not self._worth_writing():
                return  # an idle lane, or none: nothing to announce (an idle loop makes no write)
            if self.mine is None and self.predecessor is not None:
                # A revived loop goes on with its crashed predecessor's lane (and share) once no view of that
                # loop can spend any more, rather than wait TTL_S for the lane to expire (docs/downstream.md).
                if now_ms < self.predecessor.seen_ms + SWITCH_S * 1000 and not self.predecessor.released:
                    return
                self.mine, self.predecessor = self.predecessor, None
            record = self._next_record(now_ms)
            # Only a fresh view may say a lane is long gone: in an old one a live lane looks old too.
            fresh = sent - self.viewed_at < VIEW_MAX_S
            drop = [lane.lane for lane in self.view if fresh and lane.seen_ms < now_ms - DROP_AFTER_S * 1000]
            self.refreshes += 1
        try:
            lanes = self.store.refresh(self.limit.name, record, drop=drop)
        except LaneTaken as exc:
            with lock:
                # Held, then lost: this loop's token was taken over. Never held: an old loop's lane, until it
                # expires (or its holder refreshed it after all: read it again at the next try).
                self.taken = self.mine is not None and self.mine.loop_id == self.loop_id
                if not self.taken:
                    self.mine, self.resumed = None, False
            log("warning", "lane_taken", error=str(exc), lost=self.taken, **self.log_fields)
            return
        except Exception as exc:  # no fresh view: no calls once the old one is VIEW_MAX_S old
            log("warning", "share_refresh_failed", error=repr(exc), **self.log_fields)
            return
        mine = next((lane for lane in lanes if lane.lane == self.lane), None)
        with lock:
            if mine is None or mine.loop_id != self.loop_id:
                # A loop that finds no lane of its own cannot know its share: it has lost its lease (issue 14).
                self.taken = True
            else:
                self.view, self.mine, self.viewed_at = lanes, mine, sent
                self.received, self.period_start, self.waited_s = 0, sent, 0.0
        if self.taken:
            log("warning", "lane_missing", **self.log_fields)

    def drain(self, lock: AbstractContextManager[object] | None = None) -> float:
        """Its loop is asked to retire: announce 0 now, and say until when (epoch seconds) the share it holds
        still counts in every view, for its loop to go on spending it meanwhile. Retiring at once instead
        left that share idle for a switch (7 s) after each retired loop (the demo's stage 3 went from 4
        loops to 1 at about 25 calls a second of its 50 for 12 s). Now: nothing to spend (no view, no
        share, the lane taken, its 0 not written)."""
        lock = lock or nullcontext()
        now = self.clock.time()
        with lock:
            self.draining, self.received, self.backlog = True, 0, False
            if self.taken:
                return now
        if not self.resumed:
            self._resume(int(now * 1000), lock)
        if self.mine is None:
            return now
        self.refresh(lock)
        mine = self.mine
        now_ms = int(self.clock.time() * 1000)
        if mine is None or mine.seen_ms < now_ms - int(SKEW_S * 1000) or self.rate_now() == 0:
            return now  # the refresh failed (no 0 written), or the lane has nothing to spend now: retire at once
        # Its 0 counts at its switch (or, written behind a pending change, at that second change's).
        ends_ms = mine.then_ms if mine.then == 0 else mine.switch_ms if mine.demand == 0 else None
        if ends_ms is None:
            return now  # a third change would wait: the 0 is not written, so nothing ends the share
        return min(ends_ms, mine.seen_ms + int(TTL_S * 1000)) / 1000

    def rejoin(self) -> None:
        """The retire request was taken back while the loop drained: its next refresh announces its demand."""
        self.draining = False

    def leave(self) -> None:
        """Its loop retires: announce 0 (at once, unless a change is pending: then at no time, and the lane
        holds that change until it expires) and release the lane, so that the token's next loop (a scale-up
        soon after) goes on with it at once instead of finding it held for TTL_S."""
        self.received, self.backlog, self.leaving, self.draining = 0, False, True, False
        if not self.resumed and not self.taken:
            # A step that retires before it refreshed (an idle one) still knows nothing of the lane its last
            # step left, perhaps with a backlog: read it, so that the 0 below goes out (one GetItem).
            self._resume(int(self.clock.time() * 1000), nullcontext())
        if self.mine is not None and not self.taken:
            self.refresh()  # idle or not: the release lets the token's next loop go on with the lane

    def _resume(self, now_ms: int, lock: AbstractContextManager[object]) -> None:
        """A loop's next step (a new invocation) goes on with the lane its last step left, if it is still
        live: one read at the first refresh, so that a recursion does not wait SWITCH_S for its share again."""
        try:
            lanes = self.store.read(self.limit.name)
        except Exception as exc:  # then as a new lane (its share a switch later): never more than that
            log("warning", "share_read_failed", error=repr(exc), **self.log_fields)
            return
        mine = next((lane for lane in lanes if lane.lane == self.lane), None)
        with lock:
            self.resumed = True
            if mine is None or now_ms >= mine.seen_ms + (TTL_S - SKEW_S) * 1000:
                return
            if mine.loop_id == self.loop_id:
                self.mine = mine
            elif mine.generation < self.generation or mine.released:
                self.predecessor = mine
            else:
                return
            if math.isinf(mine.demand) and self.noted and not self.backlog and self.received == 0:
                # The lane goes on with its last step's backlog: this step's empty receives so far (one, as a
                # rule) are the one empty receive that is not yet a dry queue (note()).
                self.backlog, self.empty_once, self.dry = True, True, False

    def _worth_writing(self) -> bool:
        """Whether a refresh has anything to write: a demand now, or a lane (or a predecessor's) that had one."""
        had = [lane for lane in (self.mine, self.predecessor) if lane is not None]
        return self.leaving or self.wanted() > 0 or any(lane.demand > 0 or lane.prev > 0 for lane in had)

    def _next_record(self, now_ms: int) -> LaneRecord:
        want = self.wanted()
        old = None if self.mine is None else self.mine.settled(now_ms)
        fresh = old is None or now_ms >= old.seen_ms + (TTL_S - SKEW_S) * 1000
        switch = now_ms + int(SWITCH_S * 1000)
        then, then_ms, gives_after = None, 0, None
        if fresh:
            demand, prev, switch_ms = want, 0.0, switch if want > 0 else now_ms
        else:
            assert old is not None
            if old.pending(now_ms):  # two changes at a time at most: a third waits until the first counts
                demand, prev, switch_ms = old.demand, old.prev, old.switch_ms
                then, then_ms, gives_after = old.then, old.then_ms, old.gives_after
                if then is None and changed(old.demand, want):
                    then, then_ms = want, switch  # a switch after this write, as any change (LaneRecord.then)
            elif not changed(old.demand, want):
                demand, prev, switch_ms = old.demand, old.demand, old.switch_ms
            else:
                demand, prev, switch_ms = want, old.demand, switch
        # Its queue ran dry (nothing in hand) or its loop retires: until its 0 counts the lanes held back take
        # its slots after the last it spent (all started by now), rather than leave them unused for up to 7 s.
        zero_ms = switch_ms if demand == 0 < prev else then_ms if then == 0 else None
        if gives_after is None and zero_ms and (self.leaving or (self.dry and not self.draining)):
            gives_after = max(self.used, Slots.of(self.limit.rate_limit, {}).slot_at(now_ms / 1000))
        if gives_after is not None and zero_ms:
            self.gave_until_ms = max(self.gave_until_ms, zero_ms)
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
            generation=self.generation,
            released=self.leaving,
            then=then,
            then_ms=then_ms,
            gives_after=gives_after,
        )

    # -- turns ---------------------------------------------------------------------------------------

    def usable(self) -> bool:
        return not self.taken and self.clock.monotonic() - self.viewed_at < VIEW_MAX_S

    def rate_now(self) -> float:
        """This loop's messages a second now (0 without a usable view, or while it gives its slots)."""
        now_ms = int(self.clock.time() * 1000)
        if not self.usable() or self._gives(now_ms):
            return 0.0
        shares, spare, given = self._shares(now_ms)
        return shares.get(self.lane, 0.0) + spare + inherited(given, shares, self.lane)

    def _gives(self, now_ms: int) -> bool:  # it gave its slots (or the loop it took over from did)
        return now_ms < self.gave_until_ms or (self.mine is not None and self.mine.gives(now_ms))

    def _shares(self, now_ms: int) -> tuple[dict[str, float], float, list[Gift]]:
        """Every lane's share at ``now_ms``, what this lane may take of the rate no lane holds (a new lane's,
        until its switch: shares.spare_for), and the gifts of lanes that make no more calls (shares.gifts)."""
        if self.mine is not None and self.mine.demand > 0 and alone(self.view, self.lane, now_ms):
            return {self.lane: self.limit.rate_limit}, 0.0, []
        shares = allocate(self.view, self.limit.rate_limit, now_ms)
        spare = 0.0 if self.mine is None else spare_for(self.view, self.mine, shares, self.limit.rate_limit, now_ms)
        return shares, spare, gifts(self.view, shares, now_ms)

    def turn_at(self, units: int, not_before_s: float) -> tuple[float, int] | None:
        """The earliest epoch time at or after ``not_before_s`` this loop may call with ``units``, and the
        slot it spends up to; None if not before the view or the allocation may change."""
        now_ms = int(not_before_s * 1000)
        if not self.usable() or self._gives(now_ms):
            return None
        shares, spare, given = self._shares(now_ms)
        if shares.get(self.lane, 0.0) + spare + inherited(given, shares, self.lane) <= 0:
            return None
        slots = Slots.of(self.limit.rate_limit, shares, (self.lane, spare) if spare > 0 else None, given)
        valid_s = min(
            self._next_change_s(now_ms), self.clock.time() + VIEW_MAX_S - (self.clock.monotonic() - self.viewed_at)
        )
        horizon = TURN_HORIZON_S  # a call never spends a slot older than this, whatever it carries
        limit = min(_SEARCH_SLOTS, max(1, math.ceil((valid_s - not_before_s + horizon) * slots.rate)))
        # Not a slot from before the allocation last changed: under the old one it may have been another's.
        after = max(self.used, math.ceil((self._last_change_s(now_ms) - EPOCH_S) * slots.rate) - 1)
        slot = turn(slots, self.lane, units=units, after=after, now_s=not_before_s, horizon_s=horizon, limit=limit)
        if slot is None:
            return None
        at = max(not_before_s, slots.start_of(slot))
        return (at, slot) if at < valid_s else None

    def look_again_at(self) -> float:
        """When a loop that found no turn should search again (epoch seconds): at the allocation's next change,
        which may hold a turn at once (a wait of RETRY_S past it stalled the demo's stage 3 at each), or sooner."""
        now = self.clock.time()
        soon = now + RETRY_S
        return min(soon, self._next_change_s(int(now * 1000)) + 0.001) if self.usable() else soon

    def _last_change_s(self, now_ms: int) -> float:
        """When the allocation last changed: the latest switch or expiry of any lane up to ``now_ms``."""
        return max((m for lane in self.view for m in moments(lane) if m <= now_ms), default=0) / 1000

    def _next_change_s(self, now_ms: int) -> float:
        """When the allocation may next change: the next switch or expiry of any lane."""
        return min((m for lane in self.view for m in moments(lane) if m > now_ms), default=now_ms + 10**9) / 1000
