"""On moto: a loop's heartbeat carries its pace onto its token row, and restart and scale_up cap a
rate-limited queue at the loops its limit keeps busy (docs/scaling.md#limit-cap)."""

from __future__ import annotations

import math
import random
from typing import Any

import boto3
import pytest
import sample_handlers
from conftest import ACCOUNT, REGION, FakeClock, LoopRig, log_events, send
from scaler_rig import PREFIX, PlaneRig, build_plane
from test_limit_cap import CONFIG, QUEUE

from poller.clock import epoch_ms
from poller.downstream.shares import LaneRecord
from poller.downstream.state import DynamoSharedStore
from poller.growth_request import growth_request
from poller.lease.lease import Lease
from poller.lease.pace import PaceFigures
from poller.lease.step import LoopStep
from poller.lease.tokens import TokenStore
from scaler.alarms.names import depth_alarm_names
from scaler.control import UP
from scaler.limit_cap import cap_loops

URL = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/emails"
COOLDOWN_S = 300


@pytest.fixture
def rig(tokens: TokenStore, clock: FakeClock) -> PlaneRig:
    return build_plane(tokens, clock, CONFIG, reads=True)


def restart(rig: PlaneRig) -> dict[str, Any]:
    report: dict[str, Any] = rig.plane.restart(region=REGION, account_id=ACCOUNT)
    return report["emails"]


def report_pace(rig: PlaneRig, clock: FakeClock, rps: float, wait: float) -> None:
    """Every live loop's heartbeat, carrying the pace it measured."""
    for row in rig.rows("emails"):
        rig.tokens.heartbeat(
            URL,
            row.token,
            loop_id=row.loop_id,
            generation=row.generation,
            now_ms=epoch_ms(clock),
            pace=PaceFigures(rps=rps, wait=wait),
        )


def new_lease(
    tokens: TokenStore, clock: FakeClock, claimed: Any, *, heartbeat_s: float, report_early: bool = True
) -> Lease:
    """The lease a loop step holds on slot-0001 once it has claimed ``claimed``."""
    return Lease(
        store=tokens,
        step=LoopStep(URL, "slot-0001", "L1", claimed.generation - 1),
        claimed=claimed,
        confirmed_at=clock.monotonic(),
        heartbeat_s=heartbeat_s,
        clock=clock,
        rand=random.Random(0),
        log_fields={},
        report_early=report_early,
    )


def test_the_heartbeat_writes_the_loops_pace_and_a_takeover_clears_it(tokens: TokenStore, clock: FakeClock) -> None:
    tokens.create(URL, "slot-0001", loop_id="L1", now_ms=epoch_ms(clock))
    claimed = tokens.claim(URL, "slot-0001", loop_id="L1", generation=0, claim_id="c1", now_ms=epoch_ms(clock))
    lease = new_lease(tokens, clock, claimed, heartbeat_s=30)
    for _ in range(30):  # 8 records a batch each second, 75 ms of it working, the rest waiting for the share
        clock.advance(1)
        lease.pace.batch(handed=8, waited_s=0.925, received_at=clock.monotonic() - 1, now=clock.monotonic())
    lease.heartbeat_if_due(deadline=None)
    row = tokens.get(URL, "slot-0001")
    assert row is not None and row.pace is not None
    assert row.pace.rps == pytest.approx(106.7, rel=0.01) and row.pace.wait == pytest.approx(0.925, abs=0.001)
    assert row.pace_at == row.last_used == epoch_ms(clock)

    taken = tokens.takeover(row, new_loop_id="L2", now_ms=epoch_ms(clock) + 1)
    assert taken.pace is None and tokens.get(URL, "slot-0001").pace is None  # type: ignore[union-attr]


def test_a_heartbeat_without_figures_leaves_the_row_as_it_was(tokens: TokenStore, clock: FakeClock) -> None:
    tokens.create(URL, "slot-0001", loop_id="L1", now_ms=0)
    tokens.claim(URL, "slot-0001", loop_id="L1", generation=0, claim_id="c1", now_ms=1)
    tokens.heartbeat(URL, "slot-0001", loop_id="L1", generation=1, now_ms=2, pace=PaceFigures(50, 0.5))
    tokens.heartbeat(URL, "slot-0001", loop_id="L1", generation=1, now_ms=3)
    row = tokens.get(URL, "slot-0001")
    assert row is not None and row.pace == PaceFigures(50, 0.5) and row.pace_at == 2 and row.last_used == 3


def test_restart_caps_a_rate_limited_queue_at_the_loops_its_limit_keeps_busy(
    rig: PlaneRig, clock: FakeClock, loop_logs: Any
) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    send(sqs, URL, [str(n) for n in range(60)])  # past the top step: the depth rule wants 4
    first = restart(rig)
    # A new backlog, no figures: one loop more than the queue has, not the top step at once.
    assert first["rule"] == 4 and first["wanted"] == 1 and first["limited"]["figures"] == 0
    clock.advance(60)
    assert restart(rig)["wanted"] == 2  # still no figures (the loop reported none): one more
    report_pace(rig, clock, rps=107, wait=0.86)  # each loop could do 107/s; they wait for 15/s shares
    capped = restart(rig)
    # The loops wait for the limit: the cap lowers the count at once, not a cool-down later.
    assert capped["wanted"] == 1 and capped["rule"] == 4 and capped["held"] == 2
    assert capped["limited"] == {
        "loops": 1,
        "limit": 30,
        "per_loop": 107,
        "wait": 0.86,
        "figures": 2,
        "used": 29.96,
        "spare": 1,
        "whole": None,
    }
    assert len(rig.live("emails")) == 1
    reconciled = log_events(loop_logs, "reconciled")
    assert reconciled[-1]["limited"]["loops"] == 1

    # A minute later the one loop's faded figures still show the waits of when it shared the limit (they
    # say 19/s handed over, not 30): the cut holds, the cool-down forgot the second loop it had probed.
    clock.advance(60)
    report_pace(rig, clock, rps=107, wait=0.82)
    lagging = restart(rig)
    assert lagging["wanted"] == 1 and lagging["held"] == 0 and len(rig.live("emails")) == 1

    # The vendor answers five times slower: the one loop's pace falls, and loops come back at once.
    clock.advance(60)
    report_pace(rig, clock, rps=21, wait=0.05)
    grown = restart(rig)
    assert grown["wanted"] == 2 and grown["limited"]["loops"] == 2 and len(rig.live("emails")) == 2

    # It speeds up again, but the loops do not wait for the limit (the backlog may be ending): the
    # cool-down holds the second loop, as it does for the depth rule.
    clock.advance(60)
    report_pace(rig, clock, rps=107, wait=0.05)
    held = restart(rig)
    assert held["limited"]["loops"] == 1 and held["wanted"] == 2


def test_a_drained_queue_gets_no_loop_more_for_an_alarm_still_in_alarm(rig: PlaneRig, clock: FakeClock) -> None:
    """The backlog is gone and the loop's figures went stale with its work, but the top step's alarm is
    still in ALARM (CloudWatch is minutes behind): without figures the cap grows a loop at a time only for
    a queue that holds messages."""
    sqs = boto3.client("sqs", region_name=REGION)
    assert restart(rig)["wanted"] == 1  # min_loops
    clock.advance(60)  # its loop is past its warm-up
    for name in depth_alarm_names(PREFIX, QUEUE):
        rig.set_state(name, "ALARM")
    empty = restart(rig)
    assert empty["rule"] == 4 and empty["limited"]["figures"] == 0 and empty["wanted"] == 1
    assert len(rig.live("emails")) == 1
    send(sqs, URL, ["a"])  # a message again: a backlog the loop has not reported on, one loop more
    assert restart(rig)["wanted"] == 2


def test_with_the_cap_switched_off_the_rule_decides_and_the_cap_is_still_reported(
    tokens: TokenStore, clock: FakeClock
) -> None:
    rig = build_plane(
        tokens,
        clock,
        CONFIG.replace("poller: {heartbeat_s: 30}", "poller: {heartbeat_s: 30, limit_cap: false}"),
        reads=True,
    )
    assert not rig.config.poller.limit_cap
    send(boto3.client("sqs", region_name=REGION), URL, [str(n) for n in range(60)])
    assert restart(rig)["wanted"] == 4  # today's rule: the depth's top step at once
    report_pace(rig, clock, rps=107, wait=0.93)
    again = restart(rig)
    assert again["wanted"] == 4 and again["limited"]["loops"] == 1 and len(rig.live("emails")) == 4


def test_figures_older_than_a_stale_row_do_not_cap(rig: PlaneRig, clock: FakeClock) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    send(sqs, URL, [str(n) for n in range(60)])
    restart(rig)
    report_pace(rig, clock, rps=107, wait=0.93)
    clock.advance(rig.config.stale_after_s + 1)
    stale = restart(rig)["limited"]  # a dead loop's figures say nothing: the queue grows a loop at a time
    assert stale["figures"] == 0 and stale["loops"] == 2


def test_a_growth_request_adds_no_loop_past_the_cap(rig: PlaneRig, clock: FakeClock) -> None:
    assert restart(rig)["wanted"] == 1 and len(rig.live("emails")) == 1  # min_loops
    report_pace(rig, clock, rps=107, wait=0.93)  # the one loop already waits for the limit
    send(boto3.client("sqs", region_name=REGION), URL, [str(n) for n in range(60)])
    request = growth_request(URL, loop_id="L", depth=60, wanted=4)
    [result] = rig.plane.on_alarm_event(request, UP, region=REGION, account_id=ACCOUNT)
    assert result["rule"] == 4 and result["wanted"] == 1 and result["limited"]["loops"] == 1
    assert result["started"] == [] and len(rig.live("emails")) == 1
    report_pace(rig, clock, rps=15, wait=0.0)  # the handler slowed: 30/s needs two loops of 15/s
    [result] = rig.plane.on_alarm_event(request, UP, region=REGION, account_id=ACCOUNT)
    assert result["wanted"] == 2 and len(rig.live("emails")) == 2
    report_pace(rig, clock, rps=15, wait=0.08)  # two of them leave 8 % of the limit unused: one to spare
    [result] = rig.plane.on_alarm_event(request, UP, region=REGION, account_id=ACCOUNT)
    assert result["wanted"] == 3 and result["limited"]["used"] == 27.6 and len(rig.live("emails")) == 3


def test_a_rate_limited_loop_writes_its_pace_with_its_heartbeats(rig_factory: Any) -> None:
    clock = FakeClock()
    # 4 a second for the one loop; its handler takes 25 ms a record: unwaited it could do 40 a second.
    rig: LoopRig = rig_factory(clock=clock, poller="poller: {heartbeat_s: 2}", rate_limit=4, max_loops=1)
    send(rig.sqs, rig.url, [f"m{n}" for n in range(60)])
    sample_handlers.use(lambda event, context: clock.advance(0.025 * len(event["Records"])))

    rig.run(rig.create_token(), budget_s=12)

    row = rig.tokens.get(rig.url, rig.token)
    assert row is not None and row.pace is not None and row.pace_at is not None
    assert 30 <= row.pace.rps <= 40.5  # 40/s, less anything else the loop did between its waits
    assert row.pace.wait > 0.8  # the share binds: 4/s of a possible 40/s
    cap = cap_loops(4, [row.pace], live=1)
    assert cap.loops == 1 and cap.binds


def test_a_new_lanes_probe_batch_is_not_its_pace(rig_factory: Any) -> None:
    """Another queue's lane holds the whole shared limit: the new loop receives one message to learn it has
    work, and waits a switch (7 s) for its lane's first share. That record's call took 0.9 s (on the demo's
    loaded machine the probe's step start-up did); the later ones take 25 ms each. The figures the loop
    writes are its pace from the batches after the probe (40 a second unwaited), not one with the probe in."""
    clock = FakeClock()
    downstream = "downstreams:\n  vendor: {rate_limit: 20}\npoller: {heartbeat_s: 2}"
    rig: LoopRig = rig_factory(clock=clock, poller=downstream, downstream="vendor", max_loops=1)
    now_ms = epoch_ms(clock)
    holder = LaneRecord(
        lane="other#slot-0001", queue="other", weight=1, priority=0, demand=math.inf, prev=math.inf,
        switch_ms=now_ms - 60_000, seen_ms=now_ms, loop_id="other-loop",
    )  # fmt: skip
    DynamoSharedStore(boto3.client("dynamodb", region_name=REGION), rig.tokens.model.Meta.table_name).refresh(
        "vendor", holder, drop=[]
    )
    send(rig.sqs, rig.url, [f"m{n}" for n in range(80)])
    calls = iter([0.9])
    sample_handlers.use(lambda event, context: clock.advance(next(calls, 0.025) * len(event["Records"])))

    rig.run(rig.create_token(), budget_s=18)

    row = rig.tokens.get(rig.url, rig.token)
    assert row is not None and row.pace is not None
    assert 30 <= row.pace.rps <= 40.5, row.pace  # with the probe counted: 23 a second


def test_a_loops_first_figures_reach_its_row_within_seconds_not_a_heartbeat_later(
    tokens: TokenStore, clock: FakeClock
) -> None:
    tokens.create(URL, "slot-0001", loop_id="L1", now_ms=epoch_ms(clock))
    claimed = tokens.claim(URL, "slot-0001", loop_id="L1", generation=0, claim_id="c1", now_ms=epoch_ms(clock))
    lease = new_lease(tokens, clock, claimed, heartbeat_s=75)
    for _ in range(3):  # three seconds of work: enough to tell (poller/lease/pace.py)
        clock.advance(1)
        lease.pace.batch(handed=8, waited_s=0.9, received_at=clock.monotonic() - 1, now=clock.monotonic())
        lease.heartbeat_if_due(deadline=None)
    row = tokens.get(URL, "slot-0001")
    assert lease.heartbeats == 1 and row is not None and row.pace is not None and row.pace_at == epoch_ms(clock)
    for _ in range(30):  # then the usual interval: no write per batch
        clock.advance(1)
        lease.pace.batch(handed=8, waited_s=0.9, received_at=clock.monotonic() - 1, now=clock.monotonic())
        lease.heartbeat_if_due(deadline=None)
    assert lease.heartbeats == 1

    # The next step of the same loop finds its figures fresh on the row: nothing early.
    again = tokens.claim(URL, "slot-0001", loop_id="L1", generation=1, claim_id="c2", now_ms=epoch_ms(clock))
    step = new_lease(tokens, clock, again, heartbeat_s=75)
    for _ in range(5):
        clock.advance(1)
        step.pace.batch(handed=8, waited_s=0.9, received_at=clock.monotonic() - 1, now=clock.monotonic())
        step.heartbeat_if_due(deadline=None)
    assert step.heartbeats == 0

    # A queue without a rate limit (the cap never sizes it) makes no early write at all.
    assert tokens.release(URL, "slot-0001")
    tokens.create(URL, "slot-0001", loop_id="L1", now_ms=epoch_ms(clock))
    free = tokens.claim(URL, "slot-0001", loop_id="L1", generation=0, claim_id="c3", now_ms=epoch_ms(clock))
    assert free.pace_at is None  # as in the first lease above, which wrote early
    unlimited = new_lease(tokens, clock, free, heartbeat_s=75, report_early=False)
    for _ in range(5):
        clock.advance(1)
        unlimited.pace.batch(handed=8, waited_s=0.0, received_at=clock.monotonic() - 1, now=clock.monotonic())
        unlimited.heartbeat_if_due(deadline=None)
    assert unlimited.heartbeats == 0
