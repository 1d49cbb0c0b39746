"""The shared downstream simulated (sandbox/share_sim.py: the real Turns on an injected clock, an in-memory
state row): the issue's guarantees over a few simulated minutes, measured rather than assumed."""

from __future__ import annotations

import pytest

from bench.handover import handover_s
from poller.config.shared import Downstream
from sandbox.share_sim import LoopPlan, QueuePlan, Simulation

VENDOR = Downstream(name="vendor", rate_limit=50.0)


def test_weighted_queues_with_loops_coming_and_going_keep_the_limit_and_use_it() -> None:
    queues = {"groups": QueuePlan(weight=1), "items": QueuePlan(weight=3, backlog=((0, 60), (90, 200)))}
    loops = [
        LoopPlan("groups", 0, 200, "t1"),
        LoopPlan("groups", 0, 200, "t2"),
        LoopPlan("items", 10, 200, "t1"),
        LoopPlan("items", 40, 150, "t2"),  # a loop that goes away (its lane expires)
    ]
    result = Simulation(VENDOR, queues, loops, seed=5).run(200)
    assert result.max_ratio_5s() <= 1.05
    for start in (20, 100, 170):  # 30 s with both queues backlogged and their loops steady
        assert result.used(start, start + 30) >= 0.95
        share = result.used(start, start + 30, "items") / result.used(start, start + 30)
        assert share == pytest.approx(0.75, rel=0.1)  # weights 1:3, within 10 %
    # items ran dry at 60: within a few seconds groups has it all
    assert result.used(70, 90, "groups") >= 0.95
    assert result.calls_per_message() <= 0.02


def test_a_queue_that_cannot_use_its_share_leaves_it_to_the_others() -> None:
    """A slow handler (0.5 s a call) with a backlog and the bigger weight: its loop announces what it uses,
    not a backlog, and the fast queue takes the rest (the sandbox's slow stages, issue 15)."""
    queues = {"slow": QueuePlan(weight=3, call_s=0.5), "fast": QueuePlan(weight=1)}
    loops = [LoopPlan("slow", 0, 150, "t1"), LoopPlan("fast", 0, 150, "t1"), LoopPlan("fast", 0, 150, "t2")]
    result = Simulation(VENDOR, queues, loops, seed=4).run(150)
    assert result.max_ratio_5s() <= 1.05
    assert result.used(60, 150) >= 0.95 and result.used(60, 150, "slow") > 0.02  # it keeps its 2 calls a second


def test_a_new_lane_takes_what_no_lane_holds_before_its_switch() -> None:
    """A slow queue holds a little of the limit; a new loop of another queue uses the rest at once, not
    SWITCH_S (7 s) later."""
    queues = {"slow": QueuePlan(call_s=0.5), "fresh": QueuePlan()}
    loops = [LoopPlan("slow", 0, 120, "t1"), LoopPlan("fresh", 60, 120, "t1")]
    result = Simulation(VENDOR, queues, loops, seed=6).run(120)
    assert result.max_ratio_5s() <= 1.05
    assert result.used(61, 66, "fresh") >= 0.6  # without the spare: nothing before 67


def test_a_higher_priority_with_backlog_goes_first() -> None:
    queues = {"bulk": QueuePlan(), "urgent": QueuePlan(priority=1, backlog=((30, 90),))}
    loops = [LoopPlan("bulk", 0, 150, "t1"), LoopPlan("bulk", 0, 150, "t2"), LoopPlan("urgent", 0, 150, "t1")]
    result = Simulation(VENDOR, queues, loops, seed=2).run(150)
    assert result.max_ratio_5s() <= 1.05
    assert result.used(45, 90, "urgent") >= 0.95 and result.used(45, 90, "bulk") <= 0.02
    assert result.used(110, 150, "bulk") >= 0.95


def test_two_calls_a_second_behind_eight_loops() -> None:
    """Any rate works, also well under one call a second per loop."""
    loops = [LoopPlan("slow", 0, 300, f"t{n}") for n in range(8)]
    result = Simulation(Downstream(name="tiny", rate_limit=2.0), {"slow": QueuePlan()}, loops).run(300)
    assert result.max_ratio_5s() <= 1.05  # 10 in any 5 s
    assert result.used(30, 300) >= 0.95


def test_record_by_record_loops_keep_the_limit() -> None:
    queues = {"a": QueuePlan(), "b": QueuePlan(weight=2)}
    loops = [LoopPlan("a", 0, 120, "t1"), LoopPlan("b", 0, 120, "t1"), LoopPlan("b", 5, 120, "t2")]
    result = Simulation(VENDOR, queues, loops, per_record=True, call_s=0.01, seed=9).run(120)
    assert result.max_ratio_5s() <= 1.05 and result.used(30, 120) >= 0.95


def test_an_idle_queues_share_reaches_the_busy_one_within_its_loops_next_refresh() -> None:
    """Stage ``items`` runs dry at a moment that moves through a refresh period: its loop gives its slots to
    ``groups`` from its 0's write (two empty receives after the last full one) until it counts, so ``groups``
    has the limit at its loops' next refresh (4 s for three busy loops at 50 a second: shares.refresh_s), not
    a switch (7 s) after the write: 7.9-9.0 s before the gifts, 1.2-4.6 s with them (``python -m
    bench.handover``, docs/downstream.md)."""
    runs = [handover_s(60 + k) for k in range(6)]
    assert max(ratio for _, ratio in runs) <= 1.05
    waits = [wait for wait, _ in runs]
    assert max(waits) <= 5.0 and min(waits) <= 2.5, waits
