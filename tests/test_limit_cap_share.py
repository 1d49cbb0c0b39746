"""The limit cap on a shared downstream: a queue is capped at the loops its *share* keeps busy, read from
the lanes the loops write into the downstream's state row, and grows again when the share rises
(docs/scaling.md#limit-cap)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import boto3
import pytest
from conftest import ACCOUNT, REGION, FakeClock, send
from scaler_rig import PlaneRig, build_plane

from poller.clock import epoch_ms
from poller.config import parse_config
from poller.downstream.coordinator import turns_for
from poller.downstream.shares import SWITCH_S, LaneRecord
from poller.downstream.state import DynamoSharedStore
from poller.lease.pace import PaceFigures
from poller.lease.tokens import TokenStore
from scaler.share import FIRST_FIGURES_S, share_of, waiting_for_share

CONFIG = """
poller: {heartbeat_s: 30}
downstreams:
  vendor: {rate_limit: 100}
queues:
  reports:
    queue: reports
    handler: m.h
    downstream: vendor
    weight: 1
    min_loops: 0
    max_loops: 6
    scale_steps: [{depth: 1, loops: 6}]
  exports:
    queue: exports
    handler: m.h
    downstream: vendor
    weight: 3
    min_loops: 0
    max_loops: 4
  urgent:
    queue: urgent
    handler: m.h
    downstream: vendor
    priority: 1
    min_loops: 0
    max_loops: 1
"""
QUEUES = parse_config(CONFIG, source="share-test.yml").queues
URL = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/reports"
NOW_MS = 1_800_000_000_000


def lane(queue: str, n: int, demand: float, *, at_ms: int = NOW_MS, prev: float | None = None) -> LaneRecord:
    return LaneRecord(
        lane=f"{queue}#slot-{n:04d}",
        queue=queue,
        weight=QUEUES[queue].weight,
        priority=QUEUES[queue].priority,
        demand=demand,
        prev=demand if prev is None else prev,
        switch_ms=at_ms,
        seen_ms=at_ms,
        loop_id=f"L-{queue}-{n}",
    )


def test_a_queues_share_is_what_it_would_get_with_a_backlog_whatever_its_loops_ask_now() -> None:
    reports = QUEUES["reports"]
    assert share_of(reports, [], now_ms=NOW_MS) == pytest.approx(100)  # alone: the whole limit
    busy = [lane("exports", 1, math.inf), lane("exports", 2, math.inf)]
    assert share_of(reports, busy, now_ms=NOW_MS) == pytest.approx(25)  # weights 1:3
    # Its own lanes do not change it (one loop asking for 5/s, or none): the share is by weight.
    assert share_of(reports, [*busy, lane("reports", 1, 5.0)], now_ms=NOW_MS) == pytest.approx(25)
    # A higher priority takes what it can use first.
    urgent = lane("urgent", 1, 20.0)
    assert share_of(reports, [*busy, urgent], now_ms=NOW_MS) == pytest.approx(20)
    # Another queue that uses little leaves the rest; one whose lanes expired counts for nothing.
    assert share_of(reports, [lane("exports", 1, 30.0)], now_ms=NOW_MS) == pytest.approx(70)
    old = NOW_MS - 60_000
    assert share_of(reports, [lane("exports", 1, math.inf, at_ms=old)], now_ms=NOW_MS) == pytest.approx(100)
    assert share_of(QUEUES["urgent"], busy, now_ms=NOW_MS) == pytest.approx(100)  # priority 1 first
    # A queue that ran dry and gives its slots away until its 0 counts (shares.gifts) leaves its share now.
    giving = [replace(one, demand=0.0, switch_ms=NOW_MS + 5000, gives_after=7) for one in busy]
    assert share_of(reports, giving, now_ms=NOW_MS) == pytest.approx(100)
    assert share_of(reports, [replace(one, gives_after=None) for one in giving], now_ms=NOW_MS) == pytest.approx(25)
    no_downstream = parse_config("queues:\n  q: {queue: q, handler: m.h, rate_limit: 5}\n").queues["q"]
    assert share_of(no_downstream, busy, now_ms=NOW_MS) is None


@pytest.fixture
def rig(tokens: TokenStore, clock: FakeClock) -> PlaneRig:
    return build_plane(tokens, clock, CONFIG, reads=True)


def live(tokens: TokenStore) -> int:
    return sum(1 for row in tokens.tokens_of(URL) if not row.retiring)


def report(tokens: TokenStore, clock: FakeClock) -> None:
    """Each reports loop's heartbeat: it could do 10/s unwaited, and waits half its time for its share."""
    for row in tokens.tokens_of(URL):
        tokens.heartbeat(
            URL,
            row.token,
            loop_id=row.loop_id,
            generation=row.generation,
            now_ms=epoch_ms(clock),
            pace=PaceFigures(rps=10, wait=0.5),
        )


def _restart(rig: PlaneRig) -> dict[str, Any]:
    report: dict[str, Any] = rig.plane.restart(region=REGION, account_id=ACCOUNT)
    return report["reports"]


def test_a_loop_whose_first_share_is_yet_to_count_is_waiting_for_it() -> None:
    reports = QUEUES["reports"]
    written = NOW_MS - 2000  # its backlog written 2 s ago: it counts at its switch, SWITCH_S after that
    new = replace(lane("reports", 1, math.inf, prev=0.0), switch_ms=written + int(SWITCH_S * 1000), seen_ms=written)
    others = [lane("exports", 1, math.inf)]
    assert waiting_for_share(reports, {"vendor": [*others, new]}, now_ms=NOW_MS)
    counts = new.switch_ms  # its share counts: not before its loop had the time to report on it
    assert waiting_for_share(reports, {"vendor": [*others, new]}, now_ms=counts + 1000)
    assert not waiting_for_share(reports, {"vendor": [*others, new]}, now_ms=counts + int(FIRST_FIGURES_S * 1000))
    settled = lane("reports", 1, math.inf, at_ms=NOW_MS - int(FIRST_FIGURES_S * 1000))  # counting for 5 s
    assert not waiting_for_share(reports, {"vendor": [*others, settled]}, now_ms=NOW_MS)
    assert not waiting_for_share(QUEUES["exports"], {"vendor": [new]}, now_ms=NOW_MS)  # another queue's lane
    assert not waiting_for_share(reports, {}, now_ms=NOW_MS)  # the row unread


def test_a_loop_whose_next_step_refreshed_its_new_share_is_still_waiting_to_report(tokens: TokenStore) -> None:
    """The loop's first share counts, and its next step (a recursion: the same lane, one generation up)
    refreshes it at once, which writes the unchanged backlog as the lane's ``prev``: the loop has still had
    no time to report, so the cap adds no loop without figures until FIRST_FIGURES_S after the switch."""
    store = DynamoSharedStore(boto3.client("dynamodb", region_name=REGION), tokens.model.Meta.table_name)
    clock = FakeClock()

    def step(key: str, generation: int) -> None:  # a loop step of ``key`` that receives a full batch
        queue = QUEUES[key]
        turns = turns_for(
            queue.limits, store, queue=key, token="slot-0001", loop_id=f"L-{key}", generation=generation,
            weight=queue.weight, priority=queue.priority, clock=clock, log_fields={},
        )  # fmt: skip
        turns.received(10, 10)
        turns.try_take(1)  # asking for a turn writes its lane

    def waiting() -> bool:
        return waiting_for_share(QUEUES["reports"], {"vendor": store.read("vendor")}, now_ms=epoch_ms(clock))

    step("exports", 1)  # the other queue's lane holds the whole limit: this one's waits for its switch
    step("reports", 1)
    assert waiting()
    clock.advance(SWITCH_S + 0.1)
    step("reports", 2)  # the next step resumes the lane and refreshes it
    (mine,) = [lane for lane in store.read("vendor") if lane.queue == "reports"]
    assert mine.prev == mine.demand == math.inf  # nothing in the row says 0 before the switch any more
    assert waiting()
    clock.advance(FIRST_FIGURES_S)
    assert not waiting()


def test_restart_caps_a_queue_at_its_share_and_grows_it_when_the_share_rises(
    rig: PlaneRig, clock: FakeClock, tokens: TokenStore
) -> None:
    store = DynamoSharedStore(boto3.client("dynamodb", region_name=REGION), tokens.model.Meta.table_name)
    now = epoch_ms(clock)
    for n in (1, 2):  # exports has a backlog: two loops asking for all they can get
        store.refresh("vendor", lane("exports", n, math.inf, at_ms=now), drop=[])
    send(boto3.client("sqs", region_name=REGION), URL, [str(n) for n in range(30)])
    _restart(rig)
    clock.advance(60)
    report(tokens, clock)
    now = epoch_ms(clock)
    for n in (1, 2):  # exports' loops refresh their lanes (still a backlog)
        store.refresh("vendor", lane("exports", n, math.inf, at_ms=now), drop=[])
    capped = _restart(rig)
    # Its share is 25/s (1 : 3 against exports), not the downstream's 100/s: 3 loops of 10/s, not 6.
    assert capped["rule"] == 6 and capped["limited"]["limit"] == 25 and capped["limited"]["whole"] == 100
    assert capped["wanted"] == 3 and live(tokens) == 3

    # exports drained: its loops announce no demand (counting SWITCH_S later); reports may use all 100/s.
    now = epoch_ms(clock)
    for n in (1, 2):
        store.refresh("vendor", lane("exports", n, 0.0, at_ms=now, prev=math.inf), drop=[])
    clock.advance(SWITCH_S + 1)
    report(tokens, clock)
    grown = _restart(rig)
    assert grown["limited"]["limit"] == 100 and grown["limited"]["whole"] is None
    assert grown["wanted"] == 6 and live(tokens) == 6  # its top step: 100/s needs 10 of 10/s
