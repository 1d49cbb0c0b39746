"""The arithmetic of a shared downstream, pure (no I/O): which lanes (one per loop) count at a moment, how
the downstream's rate splits among them, and which of the downstream's call slots belong to whom
(docs/downstream.md has the reasoning).

Every loop computes the same answer from the same lanes at the same moment, because a lane's demand
changes only at a time fixed when the change is written (``switch_ms``, :data:`SWITCH_S` later), and a
loop spends only with a view younger than :data:`VIEW_MAX_S` < :data:`SWITCH_S`: by the time a change
counts, every loop that spends has seen it. The slots then partition the downstream's time: slot ``k``
(``1 / rate`` seconds long) belongs to at most one lane, so all loops together make at most one call a
slot, whatever the number of loops and however low the rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from poller.timing import TURN_HORIZON_S

REFRESH_S = 5.5
"""A busy loop refreshes its lane (one UpdateItem, which also returns everyone's) when its view is older."""

REFRESH_MIN_S = 2.5
"""The shortest refresh period: a downstream with few busy loops refreshes more often (refresh_s)."""

CALL_BUDGET = 0.015
"""Refreshes a message the busy loops of a downstream aim at together: the issue allows 0.02 coordination calls,
and refreshes that announce a change and each step's first read come on top."""

VIEW_MAX_S = 6.0
"""A loop spends its share only while its view is younger than this; older (the state unreachable): no calls."""

SKEW_S = 1.0
"""Slack for the request's time in flight and the clocks of two Lambda hosts (NTP keeps them to ms)."""

SWITCH_S = VIEW_MAX_S + SKEW_S
"""A lane's new demand counts this long after it is written: every spending loop has seen it by then."""

TTL_S = 2 * VIEW_MAX_S + SWITCH_S
"""A lane not refreshed for this long counts no more (its loop is gone, or sits in a long call). Above
twice the view age plus the switch, so no spending loop's view can disagree on whether a live lane counts."""

EPOCH_S = 1_767_225_600.0
"""2026-01-01T00:00:00Z: slots are counted from here (smaller numbers, the same on every host)."""

WINDOW_S = 5.0
WINDOW_MAX = 1.05
"""The promise: at most 1.05 x the limit in any 5 s (the vendor's window)."""

_SPREAD = 2654435769  # 2**32 / golden ratio: slot k sits at (k * _SPREAD) mod 2**32, spread evenly
_RING = 2**32


@dataclass(frozen=True)
class LaneRecord:
    """One loop's lane in a downstream's state row. ``demand``/``prev``: messages a second it can use now
    and before the change at ``switch_ms`` (``math.inf``: a backlog). ``seen_ms``: its last refresh.
    ``generation``: its loop step's on the token row (a revived loop's is higher: it may take the lane over).
    ``released``: its loop retired (it makes no more calls): the next loop on the token takes it over at once.
    ``then``/``then_ms``: a second change, written while the first was pending (None: none). It is as safe as
    the first: ``then_ms`` is SWITCH_S after its write, so every view that does not know of it is too old to
    spend by then, and until then both kinds of view agree. A lane whose queue runs dry, or whose loop
    retires, while it waits for a backlog to count thus says 0 a switch after, not two (or never).
    ``gives_after``: the lane's 0 is pending (at ``switch_ms``, or ``then_ms``) and its loop makes no call
    before (its queue ran dry, or it retired): its slots after this one go to the lanes its share holds back
    until then (:func:`gifts`). None: it spends its share until its switch, or has none to give."""

    lane: str
    queue: str
    weight: float
    priority: int
    demand: float
    prev: float
    switch_ms: int
    seen_ms: int
    loop_id: str
    generation: int = 0
    released: bool = False
    then: float | None = None
    then_ms: int = 0
    gives_after: int | None = None

    def effective(self, now_ms: int) -> float:
        """The demand that counts at ``now_ms`` (0 once the lane has expired)."""
        if now_ms >= self.seen_ms + TTL_S * 1000:
            return 0.0
        if self.then is not None and now_ms >= self.then_ms:
            return self.then
        return self.demand if now_ms >= self.switch_ms else self.prev

    def pending(self, now_ms: int) -> bool:
        last_ms = self.then_ms if self.then is not None else self.switch_ms
        return now_ms < last_ms and now_ms < self.seen_ms + TTL_S * 1000

    def settled(self, now_ms: int) -> LaneRecord:
        """The same lane with the changes that count by ``now_ms`` folded in: at most one left pending."""
        if self.then is None or now_ms < self.switch_ms:
            return self
        return replace(self, prev=self.demand, demand=self.then, switch_ms=self.then_ms, then=None, then_ms=0)

    def gives(self, now_ms: int) -> bool:
        """Its share still counts, its 0 is pending, and its loop makes no call before: it gives its slots."""
        if self.gives_after is None or self.effective(now_ms) == 0:
            return False
        return (self.demand == 0 and now_ms < self.switch_ms) or (self.then == 0 and now_ms < self.then_ms)


def refresh_s(lanes: Iterable[LaneRecord], rate: float, now_ms: int) -> float:
    """How often a busy loop refreshes its lane: as often as CALL_BUDGET allows for the downstream's busy lanes
    at its rate (3 busy loops at 50 a second: every 4 s), between REFRESH_MIN_S and REFRESH_S. The sooner a
    busy loop sees an idle lane's gift, the sooner it takes its slots (:func:`gifts`)."""
    busy = sum(1 for lane in lanes if lane.effective(now_ms) > 0 or lane.pending(now_ms))
    return min(REFRESH_S, max(REFRESH_MIN_S, busy / (CALL_BUDGET * rate)))


def moments(lane: LaneRecord) -> tuple[int, ...]:
    """When ``lane`` changes the allocation: its switches and its expiry (epoch milliseconds)."""
    expiry = lane.seen_ms + int(TTL_S * 1000)
    return (lane.switch_ms, expiry) if lane.then is None else (lane.switch_ms, lane.then_ms, expiry)


def changed(old: float, new: float) -> bool:
    """A demand worth announcing: to or from zero or a backlog, or by more than a quarter."""
    if old == new:
        return False
    if old == 0 or new == 0 or math.isinf(old) or math.isinf(new):
        return True
    return not 0.8 <= new / old <= 1.25


def slot_rate(rate: float) -> float:
    """Slots a second for a limit of ``rate``: so many that a window of 5 s plus the oldest slot a call may
    spend (TURN_HORIZON_S) holds no more than 1.05 x the limit, and no more than the rate. At 2 a second:
    10 in any 5 s (1.94 slots a second, not 2: a late call at the window's edge would be the 11th); at 50
    and more, the rate."""
    return min(rate, math.floor(WINDOW_MAX * WINDOW_S * rate) / (WINDOW_S + TURN_HORIZON_S))


def water_fill(caps: Mapping[str, float], weights: Mapping[str, float], budget: float) -> dict[str, float]:
    """Split ``budget`` in proportion to ``weights``, none above its cap; what a capped one leaves goes to
    the others (weighted max-min fairness). Zero caps get nothing."""
    out = {k: 0.0 for k in caps}
    active = {k for k, cap in caps.items() if cap > 0}
    left = budget
    while active and left > 1e-12:
        per_weight = left / sum(weights[k] for k in active)
        capped = {k for k in active if caps[k] <= per_weight * weights[k]}
        if not capped:
            for k in active:
                out[k] = per_weight * weights[k]
            return out
        for k in capped:
            out[k] = caps[k]
            left -= caps[k]
        active -= capped
    return out


def allocate(lanes: Iterable[LaneRecord], rate: float, now_ms: int) -> dict[str, float]:
    """Each lane's messages a second at ``now_ms``: priorities in descending order take what they can use,
    busy queues of one priority share by weight, a queue's share splits evenly among its busy lanes."""
    by_queue: dict[str, list[LaneRecord]] = {}
    for lane in lanes:
        by_queue.setdefault(lane.queue, []).append(lane)
    out: dict[str, float] = {}
    left = rate
    for priority in sorted({lanes_[0].priority for lanes_ in by_queue.values()}, reverse=True):
        queues = {q: ls for q, ls in by_queue.items() if ls[0].priority == priority}
        caps = {q: min(rate, sum(lane.effective(now_ms) for lane in ls)) for q, ls in queues.items()}
        shares = water_fill(caps, {q: ls[0].weight for q, ls in queues.items()}, left)
        for q, ls in queues.items():
            lane_caps = {lane.lane: min(rate, lane.effective(now_ms)) for lane in ls}
            out.update(water_fill(lane_caps, dict.fromkeys(lane_caps, 1.0), shares[q]))
        left = max(0.0, left - sum(shares.values()))
    return out


def spare_for(
    lanes: Sequence[LaneRecord], me: LaneRecord, shares: Mapping[str, float], rate: float, now_ms: int
) -> float:
    """What a lane whose demand is yet to count (new, or back from none) may take at once: the rate no lane
    holds at ``now_ms``, as long as no lane written before it has a change pending. Any lane that could claim
    that rate before this lane's switch was written before it, so this lane sees it pending; a lane written
    later (:func:`written_after`) saw this one pending and claims nothing before this lane's switch, when the
    spare ends (docs/downstream.md)."""
    if me.demand <= 0 or shares.get(me.lane, 0.0) > 0 or not me.pending(now_ms):
        return 0.0
    if any(lane.lane != me.lane and lane.pending(now_ms) and not written_after(lane, me, now_ms) for lane in lanes):
        return 0.0
    return max(0.0, min(me.demand, rate - sum(shares.values())))


def written_after(lane: LaneRecord, me: LaneRecord, now_ms: int) -> bool:
    """Whether ``lane``'s pending change was written after ``me``'s, which is pending too: its switch is more
    than SKEW_S (a request's time in flight and the clocks' difference, as for every switch) after
    ``me``'s. Its write then returned ``me`` pending, so that lane takes neither the whole rate nor the
    spare before ``me``'s switch: it does not stop ``me`` taking them meanwhile."""
    if not me.pending(now_ms):
        return False
    return lane.settled(now_ms).switch_ms > me.settled(now_ms).switch_ms + SKEW_S * 1000


def alone(lanes: Iterable[LaneRecord], me: str, now_ms: int) -> bool:
    """True when no other lane counts or is about to: this lane may then use the whole rate at once, before
    its own change counts (no one else may spend until it has seen this lane: docs/downstream.md). A lane
    whose change was written after this lane's, while this one waits for its switch, does not count either
    (:func:`written_after`): a stage that starts while the first one waits for its switch no longer stops it."""
    lanes = list(lanes)
    mine = next((lane for lane in lanes if lane.lane == me), None)

    def quiet(lane: LaneRecord) -> bool:
        later = mine is not None and written_after(lane, mine, now_ms)
        return lane.effective(now_ms) == 0 and (not lane.pending(now_ms) or later)

    return all(lane.lane == me or quiet(lane) for lane in lanes)


@dataclass(frozen=True)
class Gift:
    """A lane's slots after ``after`` until its 0 counts (:meth:`LaneRecord.gives`), split among ``heirs`` by
    weight (in lane order)."""

    giver: str
    heirs: tuple[tuple[str, float], ...]
    after: int


def gifts(lanes: Sequence[LaneRecord], shares: Mapping[str, float], now_ms: int) -> list[Gift]:
    """Who takes the slots of lanes that give them (their queue ran dry, their loop retired) before their 0
    counts: the lanes their share holds back (they count more demand than they get) of the highest priority
    that has any, of other queues if there are such, each in proportion to its share. Every view that knows
    of a gift agrees on its heirs: the shares and the demands that count are the same in every spending
    view, and the heirs do not depend on any other lane's gift (which some views may not know yet). A view
    that does not know of it leaves the giver's slots to the giver, which spends none of them: each slot
    still has at most one spender."""
    givers = [lane for lane in lanes if lane.gives(now_ms) and shares.get(lane.lane, 0.0) > 0]
    if not givers:
        return []
    held = [lane for lane in lanes if lane.effective(now_ms) > shares.get(lane.lane, 0.0) * (1 + 1e-9) + 1e-9]
    out = []
    for giver in sorted(givers, key=lambda lane: lane.lane):
        heirs = [lane for lane in held if lane.lane != giver.lane]
        # Lanes of other queues first: the giver's queue ran dry, so its other lanes are likely to give too.
        heirs = [lane for lane in heirs if lane.queue != giver.queue] or heirs
        if not heirs:
            continue
        top = max(lane.priority for lane in heirs)
        heirs = sorted((lane for lane in heirs if lane.priority == top), key=lambda lane: lane.lane)
        weights = [shares.get(lane.lane, 0.0) for lane in heirs]
        if sum(weights) <= 0:
            weights = [1.0] * len(heirs)
        assert giver.gives_after is not None
        out.append(Gift(giver.lane, tuple((h.lane, w) for h, w in zip(heirs, weights, strict=True)), giver.gives_after))
    return out


def inherited(given: Sequence[Gift], shares: Mapping[str, float], lane: str) -> float:
    """Messages a second ``lane`` takes of the gifts."""
    total = 0.0
    for gift in given:
        weights = dict(gift.heirs)
        if lane in weights:
            total += shares.get(gift.giver, 0.0) * weights[lane] / sum(weights.values())
    return total


@dataclass(frozen=True)
class Slots:
    """The downstream's slots at one allocation: slot ``k`` starts at ``EPOCH_S + k / rate`` and belongs to
    the lane whose arc of the ring holds ``(k * _SPREAD) mod 2**32`` (arcs in lane order, each as wide as
    the lane's fraction of the rate): at most one owner a slot, each lane's slots spread evenly."""

    rate: float
    arcs: Mapping[str, tuple[int, int]]
    given: Mapping[str, tuple[tuple[int, int, int], ...]] = field(default_factory=dict)
    """Arcs a lane takes of others' gifts: (start, end, the last slot not given)."""

    @classmethod
    def of(
        cls,
        rate: float,
        shares: Mapping[str, float],
        spare: tuple[str, float] | None = None,
        given: Sequence[Gift] = (),
    ) -> Slots:
        """The slots of a limit of ``rate`` (see :func:`slot_rate`) split by ``shares`` (of ``rate``);
        ``spare``: a lane with no share that takes so much of what the shares leave, in the arc after all
        of theirs (where no other lane's slots are, whether it sees that lane or not); ``given``: gifts,
        each the giver's arc cut among its heirs by weight, from the slot after the gift's ``after``."""
        arcs: dict[str, tuple[int, int]] = {}
        total = 0.0
        for lane in sorted(shares):
            start = math.floor(min(1.0, total / rate) * _RING)
            total += shares[lane]
            arcs[lane] = (start, math.floor(min(1.0, total / rate) * _RING))
        if spare is not None:
            lane, extra = spare
            arcs[lane] = (
                math.floor(min(1.0, total / rate) * _RING),
                math.floor(min(1.0, (total + extra) / rate) * _RING),
            )
        taken: dict[str, list[tuple[int, int, int]]] = {}
        for gift in given:
            start, end = arcs[gift.giver]
            weight, whole, at = 0.0, sum(w for _, w in gift.heirs), start
            for heir, w in gift.heirs:
                weight += w
                cut = start + math.floor((end - start) * min(1.0, weight / whole))
                taken.setdefault(heir, []).append((at, cut, gift.after))
                at = cut
        return cls(rate=slot_rate(rate), arcs=arcs, given={k: tuple(v) for k, v in taken.items()})

    def slot_at(self, epoch_s: float) -> int:
        return math.floor((epoch_s - EPOCH_S) * self.rate)

    def start_of(self, slot: int) -> float:
        return EPOCH_S + slot / self.rate

    def owns(self, lane: str, slot: int) -> bool:
        start, end = self.arcs.get(lane, (0, 0))
        at = (slot * _SPREAD) % _RING
        return start <= at < end or any(a <= at < b and slot > after for a, b, after in self.given.get(lane, ()))

    def owned(self, lane: str, first: int, last: int) -> list[int]:
        """The lane's slots from ``first`` to ``last`` (both included)."""
        return [k for k in range(first, last + 1) if self.owns(lane, k)]


def turn(slots: Slots, lane: str, *, units: int, after: int, now_s: float, horizon_s: float, limit: int) -> int | None:
    """The slot at whose start (or now, if later) ``lane`` may make a call carrying ``units`` messages: the
    first by which it has ``units`` unused slots (later than ``after``) no older than ``horizon_s`` at the
    call. A call thus never spends slots older than ``horizon_s``. None: not within ``limit`` slots."""
    start = max(after + 1, slots.slot_at(now_s - horizon_s))
    recent: list[int] = []
    for k in range(start, start + limit):
        if not slots.owns(lane, k):
            continue
        recent.append(k)
        call_s = max(now_s, slots.start_of(k))
        while recent and slots.start_of(recent[0]) < call_s - horizon_s:
            recent.pop(0)
        if len(recent) >= units:
            return k
    return None


def max_window(times: Sequence[float], window_s: float) -> int:
    """The most calls in any ``window_s``-long half-open window (for tests, the simulation and the demo)."""
    ordered = sorted(times)
    best, first = 0, 0
    for last, moment in enumerate(ordered):
        while moment - ordered[first] >= window_s:
            first += 1
        best = max(best, last - first + 1)
    return best
