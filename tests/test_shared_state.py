"""The coordination state of a shared downstream on the token table (moto): lanes written and read back in
one call, weighted shares after the switch, an idle queue's and a vanished loop's share going to the busy
one, a taken-over lane fenced, and a loop that cannot reach the state making no call."""

from __future__ import annotations

import math
from typing import Any

import boto3
import pytest
from conftest import REGION, FakeClock

from poller.aws.limits import SQS_MAX_WAIT_S
from poller.config.shared import Downstream
from poller.downstream.coordinator import PROBE_S, Turns, turns_for
from poller.downstream.shares import REFRESH_S, SWITCH_S, TTL_S, VIEW_MAX_S, max_window
from poller.downstream.state import DynamoSharedStore, LaneTaken
from poller.lease.tokens import TokenStore
from sandbox.share_sim import MemoryStore

VENDOR = Downstream(name="vendor", rate_limit=40.0)


@pytest.fixture
def store(tokens: TokenStore) -> DynamoSharedStore:
    client = boto3.client("dynamodb", region_name=REGION)
    return DynamoSharedStore(client, tokens.model.Meta.table_name)


def loop(
    store: Any, clock: FakeClock, queue: str, token: str = "t1", *, weight: float = 1, loop_id: str = "", gen: int = 0
) -> Turns:
    return turns_for(
        [VENDOR],
        store,
        queue=queue,
        token=token,
        loop_id=loop_id or f"{queue}-{token}",
        generation=gen,
        weight=weight,
        priority=0,
        clock=clock,
        log_fields={},
    )


def busy(*loops: Turns) -> None:
    """Each loop receives a full batch and takes turns until it has to wait (its share holds it back);
    asking refreshes its lane when due."""
    for turns in loops:
        turns.received(10, 10)
        for _ in range(10):
            wait = turns.try_take(1)
            if wait > 0:
                turns.waited(wait)  # as the dispatcher counts it
                break


def spend(clock: FakeClock, seconds: float, *loops: Turns, idle: tuple[Turns, ...] = ()) -> None:
    """``loops`` held back by their shares for ``seconds``: each takes what turns it has, then waits for the
    next (the clock moves in steps of 50 ms); the ``idle`` ones only ask when to receive."""
    for _ in range(round(seconds / 0.05)):
        busy(*loops)
        for turns in idle:
            turns.ready_in_s()
        clock.advance(0.05)


def test_lanes_share_one_row_and_weights_count_after_the_switch(store: DynamoSharedStore, tokens: TokenStore) -> None:
    clock = FakeClock()
    a, b = loop(store, clock, "groups"), loop(store, clock, "items", weight=3)
    busy(a)
    assert a.per_second() == 40  # alone: the whole limit at once
    busy(b)
    assert b.per_second() == 0  # not alone (a counts): b waits for its switch
    spend(clock, (int(SWITCH_S / REFRESH_S * 4) + 4) * REFRESH_S / 2, a, b)
    assert (a.per_second(), b.per_second()) == pytest.approx((10.0, 30.0))
    item = store.client.get_item(
        TableName=store.table, Key={"queue_url": {"S": "#downstream:vendor"}, "token": {"S": "state"}}
    )["Item"]
    assert set(item["lanes"]["M"]) == {"groups#t1", "items#t1"} and "loop_id" not in item
    # one read a step (the lane its last step left); the very first update found no row, and made it
    assert store.calls == a.counts + b.counts + 2 + 2
    assert "#downstream:vendor" not in tokens.queue_urls()  # the scaler's scan passes it by


def test_an_idle_queue_and_a_vanished_loop_leave_their_share_to_the_busy_one(store: DynamoSharedStore) -> None:
    clock = FakeClock()
    a, b, c = loop(store, clock, "groups"), loop(store, clock, "items"), loop(store, clock, "fetch")
    spend(clock, 12.0, a, b, c)
    assert a.per_second() == pytest.approx(40 / 3)
    c.received(0, 10)  # fetch ran dry: one empty receive after a full one is not yet dry, the second is
    c.received(0, 10)
    spend(clock, int(REFRESH_S + SWITCH_S) + 2, a, b, idle=(c,))
    assert (a.per_second(), b.per_second()) == pytest.approx((20.0, 20.0))
    spend(clock, int(TTL_S) + 2, a)  # items' loop is gone: no more refreshes
    assert a.per_second() == pytest.approx(40.0)


def test_a_taken_over_lane_is_fenced_and_the_loop_that_lost_it_stops(store: DynamoSharedStore) -> None:
    clock = FakeClock()
    old = loop(store, clock, "groups", loop_id="old")
    busy(old)
    assert old.per_second() == 40
    new = loop(store, clock, "groups", loop_id="new")  # restart took the token over
    busy(new)
    assert new.per_second() == 0  # the old lane is still fresh: the new loop may not share its slots
    clock.advance(TTL_S + 1)  # the old loop stopped refreshing (it is gone)
    busy(new)
    clock.advance(1.0)
    busy(new, old)
    assert new.per_second() == 40
    assert old.try_take(1) > 0 and old.per_second() == 0  # it held the lane and lost it: no more calls
    with pytest.raises(LaneTaken):
        lane = old.shares[0]
        store.refresh("vendor", lane._next_record(int(clock.time() * 1000)), drop=[])


def test_a_revived_loop_takes_its_crashed_predecessors_lane_once_its_views_ran_out(store: DynamoSharedStore) -> None:
    clock = FakeClock()
    crashed, other = loop(store, clock, "groups", loop_id="crashed", gen=3), loop(store, clock, "items")
    spend(clock, 15.0, crashed, other)
    assert crashed.per_second() == 20
    revived = loop(store, clock, "groups", loop_id="revived", gen=5)  # restart revived the token
    late = loop(store, clock, "groups", loop_id="fenced", gen=2)  # an older step of the token, not yet aware
    spend(clock, 2.0, other, revived)  # the crashed loop's view may still spend: the lane stays its own
    assert revived.per_second() == 0
    spend(clock, SWITCH_S - 2.0 + 0.5, other, revived)  # past its views, long before it expires (TTL_S)
    assert revived.per_second() == 20 and other.per_second() == 20
    spend(clock, 3.0, other, revived, late)  # the takeover is for later generations only
    assert late.per_second() == 0 and revived.per_second() == 20
    spend(clock, 0.5, other, revived, crashed)  # the crashed loop wakes: it has lost the lane
    assert crashed.per_second() == 0 and crashed.shares[0].taken


def test_one_empty_receive_after_a_full_one_is_not_yet_a_dry_queue() -> None:
    clock = FakeClock()
    a = loop(MemoryStore(), clock, "fetch")
    spend(clock, 2.0, a)
    a.received(0, 10)  # a loaded SQS answered one long poll empty with a backlog visible
    assert math.isinf(a.shares[0].wanted())
    a.received(0, 10)  # the next one too: the queue ran dry
    assert a.shares[0].wanted() == 0


class Unreachable(MemoryStore):
    def refresh(self, *args: Any, **kwargs: Any) -> Any:
        if self.now_down:
            raise ConnectionError("no route to DynamoDB")
        return super().refresh(*args, **kwargs)

    now_down = False


class Forgetful(MemoryStore):
    """A store whose answer lacks the caller's lane (its row gone): what issue 14's hole was made of."""

    def refresh(self, downstream: str, lane: Any, *, drop: Any) -> Any:
        return [other for other in super().refresh(downstream, lane, drop=drop) if other.lane != lane.lane]


def test_a_loop_that_cannot_reach_the_state_stops_calling() -> None:
    clock, store = FakeClock(), Unreachable()
    a = loop(store, clock, "groups")
    busy(a)
    clock.advance(0.1)
    assert a.try_take(1) == 0
    store.now_down = True
    clock.advance(VIEW_MAX_S)
    busy(a)
    assert a.per_second() == 0 and a.try_take(1) > 0 and not a.acquire(1, lambda: False)
    store.now_down = False
    clock.advance(1.0)
    busy(a)
    assert a.per_second() == 40


def test_a_loop_that_finds_no_lane_of_its_own_stops_rather_than_take_the_whole_limit() -> None:
    clock = FakeClock()
    a = loop(Forgetful(), clock, "groups")
    busy(a)
    assert a.per_second() == 0 and a.try_take(1) > 0 and math.isinf(a.shares[0].wanted())


def test_a_loop_waking_with_an_old_view_does_not_drop_a_live_lane() -> None:
    """Found by the long simulation: an idle loop's view is minutes old, and in it every lane looks gone."""
    clock, store = FakeClock(), MemoryStore()
    a, c = loop(store, clock, "groups"), loop(store, clock, "urgent")
    busy(a, c)
    c.received(0, 10)
    c.received(0, 10)  # twice: dry
    for _ in range(90):  # c sits idle (no refresh once its lane says so); a keeps refreshing
        clock.advance(1.0)
        store.now = clock.time()
        busy(a)
        c.ready_in_s()
    busy(c)  # work for c: it refreshes with a view 80 s old
    assert {lane.lane for lane in store.rows["vendor"].values()} == {"groups#t1", "urgent#t1"}


def test_a_loops_next_step_goes_on_with_its_share_at_once(store: DynamoSharedStore) -> None:
    clock = FakeClock()
    a, b = loop(store, clock, "groups"), loop(store, clock, "items")
    spend(clock, 10.0, a, b)
    assert a.per_second() == 20
    a_next = loop(store, clock, "groups")  # the same loop's next invocation (it recursed)
    busy(a_next)
    assert a_next.per_second() == 20 and a_next.try_take(1) < 1.0


def idle_step(turns: Turns, clock: FakeClock, seconds: float, *others: Turns) -> None:
    """A loop step that finds its queue dry: its long polls (2 s) come back empty; ``others`` stay busy."""
    for n in range(round(seconds / 0.05)):
        if n % 40 == 0:
            turns.received(0, 10)
        turns.ready_in_s()
        busy(*others)
        clock.advance(0.05)


def test_a_step_that_finds_its_queue_dry_takes_back_its_last_steps_backlog(store: DynamoSharedStore) -> None:
    clock = FakeClock()
    a, b = loop(store, clock, "groups"), loop(store, clock, "items")
    spend(clock, 10.0, a, b)
    assert a.per_second() == b.per_second() == 20
    a_next = loop(store, clock, "groups")  # its next invocation: the queue has run dry meanwhile
    idle_step(a_next, clock, 4 + SWITCH_S + 1, b)
    # two empty receives, then the switch: well before the lane would expire (TTL_S)
    assert 4 + SWITCH_S + 1 < TTL_S and b.per_second() == 40


def test_a_step_that_retires_before_its_first_refresh_still_gives_its_share_back(store: DynamoSharedStore) -> None:
    clock = FakeClock()
    a, b = loop(store, clock, "groups"), loop(store, clock, "items")
    spend(clock, 10.0, a, b)
    a_next = loop(store, clock, "groups")
    a_next.leave()  # scale-down retired it before it received anything
    spend(clock, SWITCH_S + 1, b)
    assert b.per_second() == 40


def test_the_next_loop_on_a_retired_loops_token_goes_on_with_its_lane_at_once(store: DynamoSharedStore) -> None:
    clock = FakeClock()
    a, b = loop(store, clock, "groups", loop_id="retiring", gen=3), loop(store, clock, "items")
    spend(clock, 10.0, a, b)
    a.leave()  # scale-down retired it: its row is gone, its lane released
    clock.advance(1.0)
    after = loop(store, clock, "groups", loop_id="scaled-up-again", gen=1)  # a new row on the token: generation 1
    spend(clock, 2 * SWITCH_S + 1, after, b)  # the retired loop's 0, then the new loop's backlog: two switches
    # sooner than the lane would expire (TTL_S after the retired loop's last write) and free the token's lane
    assert 1 + 2 * SWITCH_S + 1 < TTL_S
    assert not after.shares[0].taken and after.per_second() == b.per_second() == 20


def test_a_queue_that_runs_dry_under_a_backlog_gives_its_share_back_in_one_switch(store: DynamoSharedStore) -> None:
    clock = FakeClock()
    a, b = loop(store, clock, "groups"), loop(store, clock, "items")
    spend(clock, 10.0, a, b)
    a.received(3, 10)  # the queue's last messages: a short receive, right after full ones
    for _ in range(round((REFRESH_S + 0.5) / 0.05)):  # their calls wait for turns; a's lane refreshes meanwhile
        for _ in range(10):
            if a.try_take(1) > 0:
                break
        busy(b)
        clock.advance(0.05)
    a.received(0, 10)  # dry
    spend(clock, SWITCH_S + 1, b, idle=(a,))
    # one switch: not a trickle announced first (what it used x 1.5) and 0 only a switch after that
    assert b.per_second() == 40


def test_a_loop_that_retires_while_its_backlog_waits_to_count_gives_it_back_a_switch_later(
    store: DynamoSharedStore,
) -> None:
    clock = FakeClock()
    a, b = loop(store, clock, "groups"), loop(store, clock, "items")
    spend(clock, 10.0, a, b)
    scaled_up = loop(store, clock, "fetch")
    spend(clock, 2.0, a, b, scaled_up)  # its backlog is written: it counts SWITCH_S after that
    scaled_up.leave()  # scale-down took it back before then: its 0 follows a switch after this write
    spend(clock, SWITCH_S + 0.5, a, b)
    # not held until the lane expires (TTL_S after its last write): back with the loops that stay
    assert SWITCH_S + 0.5 < TTL_S and a.per_second() == b.per_second() == 20


def test_a_retiring_loop_spends_its_share_until_its_0_counts_and_the_loops_that_stay_take_it_then(
    store: DynamoSharedStore,
) -> None:
    clock = FakeClock()
    a, b = loop(store, clock, "fetch", "t1"), loop(store, clock, "fetch", "t2")
    spend(clock, 10.0, a, b)
    assert a.per_second() == b.per_second() == 20
    ends = a.drain()  # scale-down retired a: it announces 0 and may spend until that counts
    assert ends == pytest.approx(clock.time() + SWITCH_S, abs=0.1)
    taken = 0
    while clock.time() < ends - 0.05:
        assert a.per_second() + b.per_second() <= 40  # never both the old and the new share
        taken += sum(a.try_take(1) == 0 for _ in range(5))
        busy(b)
        clock.advance(0.05)
    assert taken >= 20 * (SWITCH_S - 0.5)  # its share was spent meanwhile, not left idle
    assert a.receive_limit(10, per_record=True) <= 1
    spend(clock, 0.2, b)
    assert b.per_second() == 40 and a.per_second() == 0  # at once: no switch lost
    a.leave()  # its row deleted: the lane released for the token's next loop
    assert a.shares[0].mine is not None and a.shares[0].mine.released


def test_a_retiring_loop_with_no_share_stops_at_once_and_one_taken_back_announces_its_demand_again(
    store: DynamoSharedStore,
) -> None:
    clock = FakeClock()
    a, b = loop(store, clock, "fetch", "t1"), loop(store, clock, "items")
    assert a.drain() == clock.time()  # never refreshed: nothing to spend
    spend(clock, 10.0, a, b)
    a.drain()
    a.rejoin()  # a scale-up took the retire request back
    spend(clock, 2 * SWITCH_S + REFRESH_S, a, b)
    assert a.per_second() == b.per_second() == 20


def test_a_loop_without_a_turn_looks_again_at_the_next_change_not_half_a_second_later(
    store: DynamoSharedStore,
) -> None:
    clock = FakeClock()
    a, b = loop(store, clock, "fetch", "t1"), loop(store, clock, "fetch", "t2")
    spend(clock, 12.0, a, b)
    assert a.per_second() == 20
    # b's loop is gone: its lane expires TTL_S after its last refresh, and a's share is the whole limit then
    expires = next(lane.seen_ms for lane in store.read("vendor") if lane.lane == "fetch#t2") / 1000 + TTL_S
    calls: list[float] = []
    while clock.time() < expires + 1.0:  # a's calls, each as soon as try_take allows (its waits honoured)
        a.received(10, 10)
        wait = a.try_take(1)
        if wait == 0:
            calls.append(clock.time())
        clock.advance(wait)
    after = [t for t in calls if expires <= t < expires + 1.0]
    assert len(after) >= 0.9 * 40  # not a stall of RETRY_S (0.5 s) at the change: 20 calls fewer
    assert max_window(calls, 1.0) <= 40 * 1.15 + 1  # never past the limit (slots at most 0.15 s old)


def test_a_queue_that_runs_dry_gives_its_slots_to_the_busy_one_until_its_0_counts(store: DynamoSharedStore) -> None:
    clock = FakeClock()
    a, b = loop(store, clock, "groups"), loop(store, clock, "items")
    spend(clock, 10.0, a, b)
    assert a.per_second() == b.per_second() == 20
    assert a.poll_s() == SQS_MAX_WAIT_S
    a.received(0, 10)  # one empty receive after full ones: not yet a dry queue
    a.ready_in_s()
    assert store.read("vendor")[0].gives_after is None
    assert a.poll_s() == PROBE_S  # the next long poll only asks whether the queue ran dry (1 s, not 20)
    a.received(0, 10)  # dry: nothing in hand
    a.ready_in_s()  # its 0 goes out at once, and with it its slots
    assert a.poll_s() == SQS_MAX_WAIT_S
    written = clock.time()
    mine = next(lane for lane in store.read("vendor") if lane.lane == "groups#t1")
    assert mine.demand == 0 and mine.gives_after is not None
    assert a.per_second() == 0 and a.try_take(1) > 0  # it spends nothing of its share meanwhile
    calls = []
    while clock.time() < written + SWITCH_S - 0.5:  # before its 0 counts
        for _ in range(10):
            if b.try_take(1) > 0:
                break
            calls.append(clock.time())
        a.ready_in_s()
        clock.advance(0.05)
    # b takes a's slots from its next refresh on (at most REFRESH_S after a's write), not at a's switch
    late = [t for t in calls if t >= written + REFRESH_S]
    assert len(late) >= 0.95 * 40 * (written + SWITCH_S - 0.5 - (written + REFRESH_S))
    assert b.per_second() == 40 and max_window(calls, 5.0) <= 1.05 * 40 * 5
