"""The share arithmetic of a shared downstream (poller/downstream/shares.py), pure: weights, priorities,
work conservation, the switch time of a change, and slots that never have two owners."""

from __future__ import annotations

import math

import pytest

from poller.downstream.shares import (
    CALL_BUDGET,
    REFRESH_MIN_S,
    REFRESH_S,
    SWITCH_S,
    TTL_S,
    LaneRecord,
    Slots,
    allocate,
    alone,
    gifts,
    inherited,
    max_window,
    refresh_s,
    spare_for,
    turn,
    water_fill,
)

NOW = 1_800_000_000_000


def lane(
    name: str, queue: str, *, demand: float = math.inf, weight: float = 1, priority: int = 0, **kw: int
) -> LaneRecord:
    fields = {"prev": demand, "switch_ms": NOW - 1, "seen_ms": NOW, "loop_id": "L-" + name}
    fields.update(kw)
    return LaneRecord(lane=name, queue=queue, weight=weight, priority=priority, demand=demand, **fields)  # type: ignore[arg-type]


def test_busy_queues_share_by_weight_and_a_queue_splits_among_its_loops() -> None:
    shares = allocate([lane("a1", "a"), lane("a2", "a"), lane("b1", "b", weight=3)], 40, NOW)
    assert shares == pytest.approx({"a1": 5, "a2": 5, "b1": 30})


def test_a_new_lane_takes_the_rate_no_lane_holds_in_an_arc_of_its_own_unless_another_change_is_pending() -> None:
    slow = lane("a", "a", demand=10)
    new = lane("b", "b", prev=0, switch_ms=NOW + int(SWITCH_S * 1000))  # written now, counts a switch later
    shares = allocate([slow, new], 50, NOW)
    assert shares == pytest.approx({"a": 10, "b": 0})
    assert spare_for([slow, new], new, shares, 50, NOW) == pytest.approx(40)
    slots = Slots.of(50, shares, ("b", 40))
    owners = [[k for k in ("a", "b") if slots.owns(k, n)] for n in range(1000)]
    assert max(len(o) for o in owners) == 1 and sum(1 for o in owners if o == ["b"]) == pytest.approx(800, abs=5)
    # another lane's change pending (it may have seen none of this lane): no spare
    other = lane("c", "c", prev=0, switch_ms=NOW + 3000)
    assert spare_for([slow, new, other], new, allocate([slow, new, other], 50, NOW), 50, NOW) == 0
    assert spare_for([slow, new], slow, shares, 50, NOW) == 0  # a lane that counts has its share


def test_what_a_queue_cannot_use_goes_to_the_busy_ones() -> None:
    shares = allocate([lane("a", "a", demand=4), lane("b", "b"), lane("c", "c", demand=0)], 50, NOW)
    assert shares == pytest.approx({"a": 4, "b": 46, "c": 0})


def test_a_higher_priority_with_backlog_takes_what_it_can_use_first() -> None:
    lanes = [lane("hi", "hi", priority=1), lane("lo", "lo")]
    assert allocate(lanes, 50, NOW) == pytest.approx({"hi": 50, "lo": 0})
    lanes = [lane("hi", "hi", demand=20, priority=1), lane("lo", "lo")]
    assert allocate(lanes, 50, NOW) == pytest.approx({"hi": 20, "lo": 30})


def test_a_change_counts_only_from_its_switch_time_and_an_old_lane_not_at_all() -> None:
    rising = lane("b", "b", demand=math.inf, prev=0, switch_ms=NOW + int(SWITCH_S * 1000))
    assert allocate([lane("a", "a"), rising], 10, NOW) == pytest.approx({"a": 10, "b": 0})
    assert allocate([lane("a", "a"), rising], 10, rising.switch_ms) == pytest.approx({"a": 5, "b": 5})
    gone = lane("b", "b", seen_ms=NOW - int(TTL_S * 1000))
    assert allocate([lane("a", "a"), gone], 10, NOW) == pytest.approx({"a": 10, "b": 0})


def test_a_lane_is_alone_only_when_no_other_counts_or_is_about_to() -> None:
    idle = lane("b", "b", demand=0)
    assert alone([lane("a", "a", demand=math.inf, prev=0, switch_ms=NOW + 5000), idle], "a", NOW)
    assert not alone([lane("a", "a"), lane("b", "b")], "a", NOW)
    assert not alone([lane("a", "a"), lane("b", "b", demand=math.inf, prev=0, switch_ms=NOW + 5000)], "a", NOW)


def test_water_fill_never_gives_more_than_the_budget_or_a_cap() -> None:
    out = water_fill({"x": 1, "y": 100, "z": 0}, {"x": 1, "y": 2, "z": 5}, 10)
    assert out == pytest.approx({"x": 1, "y": 9, "z": 0})


@pytest.mark.parametrize("rate", [2.0, 7.5, 50.0])
def test_slots_have_one_owner_each_and_follow_the_shares(rate: float) -> None:
    shares = {"a": rate * 0.5, "b": rate * 0.3, "c": rate * 0.2}
    slots = Slots.of(rate, shares)
    first = slots.slot_at(NOW / 1000)
    counts = dict.fromkeys(shares, 0)
    for k in range(first, first + 5000):
        owners = [name for name in shares if slots.owns(name, k)]
        assert len(owners) == 1
        counts[owners[0]] += 1
    for name, share in shares.items():
        assert counts[name] == pytest.approx(5000 * share / rate, rel=0.01)


def test_eight_loops_behind_two_calls_a_second_never_exceed_ten_in_five_seconds() -> None:
    """Any rate works: a vendor that allows 2 calls a second behind 8 busy loops (a quarter call each)."""
    rate = 2.0
    shares = {f"l{n}": rate / 8 for n in range(8)}
    slots = Slots.of(rate, shares)
    calls: list[float] = []
    for name in shares:
        now, used = NOW / 1000, -(2**62)
        while now < NOW / 1000 + 600:
            k = turn(slots, name, units=1, after=used, now_s=now, horizon_s=0.15, limit=10_000)
            assert k is not None
            used, now = k, max(now, slots.start_of(k))
            calls.append(now)
            now += 0.3  # the call itself takes a while
    assert max_window(calls, 5.0) <= 10 and len(calls) >= 0.95 * 600 * rate


def test_a_call_carrying_several_messages_spends_only_recent_slots() -> None:
    slots = Slots.of(10.0, {"a": 10.0})
    start = NOW / 1000
    k = turn(slots, "a", units=3, after=slots.slot_at(start), now_s=start, horizon_s=0.25, limit=100)
    assert k is not None and slots.start_of(k) - start == pytest.approx(0.3, abs=0.11)


def test_a_second_change_counts_from_its_own_switch_and_keeps_the_lane_pending_until_then() -> None:
    chained = lane("a", "a", demand=math.inf, prev=0, switch_ms=NOW + 7000, then=0.0, then_ms=NOW + 9000)  # type: ignore[arg-type]
    assert [chained.effective(NOW + dt) for dt in (0, 7000, 9000)] == [0, math.inf, 0]
    assert chained.pending(NOW + 8000) and not chained.pending(NOW + 9000)
    folded = chained.settled(NOW + 7000)  # the first change counts: the second is the one pending
    assert (folded.prev, folded.demand, folded.switch_ms, folded.then) == (math.inf, 0, NOW + 9000, None)
    assert chained.settled(NOW) is chained


def test_a_lane_written_after_a_pending_one_does_not_stop_it_taking_the_rate() -> None:
    first = lane("a", "a", prev=0, switch_ms=NOW + 5000)  # written first: waits for its switch
    later = lane("b", "b", prev=0, switch_ms=NOW + 6500)  # written 1.5 s later: its answer showed a pending
    close = lane("c", "c", prev=0, switch_ms=NOW + 5500)  # within SKEW_S: which came first is not known
    assert alone([first, later], "a", NOW) and not alone([first, later], "b", NOW)
    assert not alone([first, close], "a", NOW) and not alone([first, close], "c", NOW)
    slow = lane("s", "s", demand=10)
    lanes = [slow, first, later]
    shares = allocate(lanes, 50, NOW)
    assert spare_for(lanes, first, shares, 50, NOW) == pytest.approx(40)
    assert spare_for(lanes, later, shares, 50, NOW) == 0  # the later one waits: never two claims on the spare
    assert not alone([first, later], "a", first.switch_ms)  # once it counts, the later change counts as pending


def test_a_lane_that_gives_its_slots_before_its_0_counts_has_one_heir_a_slot_in_every_view() -> None:
    """Stage ``a`` ran dry: its 0 counts a switch later, its loop makes no call meanwhile and gives its slots
    after slot 100 to the lanes held back, other queues first. A view that has not seen the gift leaves them
    to ``a`` (which spends none): in no pair of views does a slot have two spenders."""
    zero = {"demand": 0, "prev": math.inf, "switch_ms": NOW + 5000}
    before = [lane("a1", "a"), lane("a2", "a"), lane("b1", "b", weight=2), lane("c1", "c", demand=4)]
    after = [lane("a1", "a", **zero, gives_after=100), *before[1:]]
    shares = allocate(after, 50, NOW)
    assert shares == allocate(before, 50, NOW)  # the gift changes no share: both kinds of view agree on them
    given = gifts(after, shares, NOW)
    # a2 (held back too) would give its slots with its queue: only b1 takes a1's; c1 has all it asks for
    assert [(g.giver, [h for h, _ in g.heirs], g.after) for g in given] == [("a1", ["b1"], 100)]
    assert inherited(given, shares, "b1") == pytest.approx(shares["a1"])
    assert gifts(after, shares, NOW + 5000) == []  # its 0 counts: nothing left to give
    knows = Slots.of(50, shares, given=given)
    old = Slots.of(50, shares)

    def spenders(slot: int) -> list[str]:
        mine = [n for n in ("a2", "b1", "c1") if knows.owns(n, slot)]  # views that know of the gift
        theirs = [n for n in ("a2", "b1", "c1") if old.owns(n, slot)]  # views that do not (a1 spends nothing)
        return sorted(set(mine) | set(theirs)) + (["a1"] if slot <= 100 and old.owns("a1", slot) else [])

    assert all(len(spenders(k)) <= 1 for k in range(2000))
    assert not any(knows.owns("b1", k) and old.owns("a1", k) for k in range(101))  # none it may have spent
    taken = sum(1 for k in range(101, 2101) if knows.owns("b1", k) and old.owns("a1", k))
    assert taken == pytest.approx(2000 * shares["a1"] / 50, abs=3)
    # another held lane of the giver's queue is its heir only when no other queue has one
    alone_ = [lane("a1", "a", **zero, gives_after=100), lane("a2", "a"), lane("c1", "c", demand=4)]
    assert [h for g in gifts(alone_, allocate(alone_, 50, NOW), NOW) for h, _ in g.heirs] == ["a2"]


def test_few_busy_loops_refresh_more_often_within_the_call_budget() -> None:
    busy = [lane(f"a{n}", "a") for n in range(3)]
    idle = [lane(f"b{n}", "b", demand=0) for n in range(4)]  # idle lanes make no refresh: they do not count
    every = refresh_s([*busy, *idle], 50, NOW)
    assert every == pytest.approx(3 / (CALL_BUDGET * 50)) and 3 / (every * 50) <= 0.02  # 4 s, 0.015 a message
    assert refresh_s(busy[:1], 50, NOW) == REFRESH_MIN_S  # never more often than this
    assert refresh_s([lane(f"c{n}", "c") for n in range(8)], 2, NOW) == REFRESH_S  # nor less (the view's age)
