"""The limit cap without AWS: a loop's pace from its batches, and the loops a rate limit keeps busy
(docs/scaling.md#limit-cap)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from poller.config import parse_config
from poller.lease.pace import Pace, PaceFigures
from poller.lease.tokens import TokenState
from scaler.cooldown import held_loops, remember
from scaler.limit_cap import cap_loops, limit_cap
from scaler.wanted import capped, combined_loops

CONFIG = """
poller: {heartbeat_s: 30}
queues:
  emails:
    queue: emails
    handler: app.emails.handle
    rate_limit: 30
    concurrency: 4
    min_loops: 1
    max_loops: 4
    scale_steps:
      - {depth: 10, loops: 2}
      - {depth: 50, loops: 4}
"""
"""The demo's ``emails`` queue (also the moto tests')."""
QUEUE = parse_config(CONFIG, source="cap-test.yml").queues["emails"]
NOW_MS = 1_800_000_000_000


def row(token: str, pace: PaceFigures | None, *, at_ms: int = NOW_MS) -> TokenState:
    return TokenState(
        queue_url="q",
        token=token,
        loop_id=f"L-{token}",
        generation=1,
        last_used=at_ms,
        created_at=0,
        retiring_since=None,
        last_error=None,
        last_error_at=None,
        pace=pace,
        pace_at=None if pace is None else at_ms,
    )


# -- a loop's pace ---------------------------------------------------------------------------------------


def test_a_loop_waiting_for_its_share_reports_what_it_could_do_unwaited() -> None:
    pace = Pace(0.0)
    now = 0.0
    for _ in range(20):  # 7.5 records a second (a quarter of 30/s), each batch done in 75 ms of 1 s
        now += 1.0
        pace.batch(handed=8, waited_s=0.925, now=now)
    figures = pace.figures()
    assert figures is not None
    assert figures.rps == pytest.approx(8 / 0.075, rel=0.01)  # ~107/s when not waiting
    assert figures.wait == pytest.approx(0.925, abs=0.001)


def test_a_loop_says_nothing_before_it_has_done_enough_work() -> None:
    pace = Pace(0.0)
    assert pace.figures() is None
    pace.batch(handed=1, waited_s=0.0, now=0.2)
    pace.batch(handed=0, waited_s=0.0, now=30.0)  # time enough, but one record says too little
    assert pace.figures() is None
    pace.batch(handed=9, waited_s=0.0, now=30.5)
    figures = pace.figures()
    assert figures is not None and figures.wait == 0.0


def test_a_loop_that_mostly_waits_still_reports() -> None:
    pace = Pace(0.0)
    for second in range(1, 121):  # a share of 1 a second, 10 ms of work each: 1 % of the time working
        pace.batch(handed=1, waited_s=0.99, now=float(second))
    figures = pace.figures()
    assert figures is not None and figures.rps == pytest.approx(100, rel=0.01) and figures.wait > 0.98


def test_a_slower_handler_shows_in_the_pace_within_a_minute() -> None:
    pace = Pace(0.0)
    now = 0.0
    for _ in range(120):  # 100/s unwaited
        now += 1.0
        pace.batch(handed=10, waited_s=0.9, now=now)
    fast = pace.figures()
    for _ in range(60):  # the handler is 5x slower: 20/s, no more waiting
        now += 1.0
        pace.batch(handed=20, waited_s=0.0, now=now)
    slow = pace.figures()
    assert fast is not None and slow is not None
    assert fast.rps == pytest.approx(100, rel=0.01)
    assert slow.rps < 40 and slow.wait < fast.wait


def test_a_wait_longer_than_the_cycle_counts_as_the_cycle() -> None:
    pace = Pace(0.0)
    pace.batch(handed=5, waited_s=10.0, now=2.0)  # waits counted before the cycle began
    pace.batch(handed=50, waited_s=0.0, now=4.0)
    figures = pace.figures()
    assert figures is not None and figures.wait <= 1.0 and figures.rps > 0


# -- the cap ---------------------------------------------------------------------------------------------


def test_a_limit_one_loop_saturates_needs_one_loop() -> None:
    cap = cap_loops(30, [107.0, 110.0, 104.0, 108.0], [0.93, 0.92, 0.94, 0.93])
    assert cap is not None and cap.loops == 1
    assert cap.describe() == "1 loop keeps 30/s busy"
    assert cap.fields()["figures"] == 4 and cap.fields()["wait"] == pytest.approx(0.93, abs=0.01)


def test_a_handler_five_times_slower_needs_more_loops() -> None:
    cap = cap_loops(30, [21.4])  # 107/s / 5
    assert cap is not None and cap.loops == 2  # ceil(33 / 21.4)
    slower = cap_loops(30, [10.0])
    assert slower is not None and slower.loops == 4 and slower.describe() == "4 loops keep 30/s busy"


def test_the_headroom_adds_a_loop_only_when_the_pace_barely_fills_the_limit() -> None:
    assert cap_loops(30, [31.0]).loops == 2  # type: ignore[union-attr]  # 33 > 31: one more
    assert cap_loops(30, [33.0]).loops == 1  # type: ignore[union-attr]


def test_no_figures_no_cap() -> None:
    assert cap_loops(30, []) is None
    assert cap_loops(30, [0.0]) is None
    assert limit_cap(QUEUE, [row("slot-0001", None)], now_ms=NOW_MS, fresh_s=120) is None
    no_limit = replace(QUEUE, rate_limit=None)
    assert limit_cap(no_limit, [row("slot-0001", PaceFigures(100, 0.9))], now_ms=NOW_MS, fresh_s=120) is None


def test_only_fresh_figures_count() -> None:
    rows = [
        row("slot-0001", PaceFigures(100, 0.9)),
        row("slot-0002", PaceFigures(5, 0.0), at_ms=NOW_MS - 600_000),  # a dead loop's, ten minutes old
    ]
    cap = limit_cap(QUEUE, rows, now_ms=NOW_MS, fresh_s=120)
    assert cap is not None and cap.loops == 1 and cap.figures == 1
    assert limit_cap(QUEUE, rows[1:], now_ms=NOW_MS, fresh_s=120) is None


# -- applied with the rules ------------------------------------------------------------------------------


def test_the_cap_bounds_the_depth_rule_and_min_loops_still_holds() -> None:
    assert combined_loops(QUEUE, {}, 5000, cap=1) == 1
    assert combined_loops(QUEUE, {}, 5000, cap=None) == 4
    assert combined_loops(QUEUE, {}, 5000, cap=2) == 2
    assert combined_loops(QUEUE, {}, 0, cap=3) == 1  # the cap never adds loops the rules do not want
    resting = replace(QUEUE, min_loops=2)
    assert combined_loops(resting, {}, 5000, cap=1) == 2
    assert combined_loops(QUEUE, {}, 5000, cap=1, pinned=3) == 3  # an operator's pin wins


def test_lowering_the_cap_waits_for_the_cool_down_raising_it_does_not() -> None:
    cooldown_s, minute = QUEUE.scale_in_cooldown_s, 60_000
    seen: dict[int, int] = {}
    now = NOW_MS

    def tick(cap: int | None) -> int:
        nonlocal seen
        held = held_loops(seen, now_ms=now, cooldown_s=cooldown_s)
        seen = remember(seen, capped(4, cap), now_ms=now, cooldown_s=cooldown_s, floor=QUEUE.min_loops)
        return combined_loops(QUEUE, {}, 5000, held=held, cap=cap)

    assert tick(None) == 4  # a new queue: no figures yet, the depth rule alone
    for _ in range(cooldown_s // 60 - 1):  # figures arrive and say one loop is enough: the four stay
        now += minute
        assert tick(1) == 4
    now += minute
    assert tick(1) == 1  # a whole cool-down later
    now += minute
    assert tick(3) == 3  # the handler slowed: loops come back at once
    now += minute
    assert tick(1) == 3  # and stay a cool-down again


def test_a_shared_downstream_caps_at_its_whole_limit_and_the_tighter_limit_holds() -> None:
    config = parse_config(
        "downstreams:\n  vendor: {rate_limit: 100}\n"
        "queues:\n"
        "  a: {queue: a, handler: m.h, downstream: vendor, max_loops: 4}\n"
        "  b: {queue: b, handler: m.h, downstream: vendor, rate_limit: 30, max_loops: 4}\n"
        "  c: {queue: c, handler: m.h, max_loops: 4}\n",
        source="cap-test.yml",
    )
    rows = [row("slot-0001", PaceFigures(40, 0.5))]
    a = limit_cap(config.queues["a"], rows, now_ms=NOW_MS, fresh_s=120)
    assert a is not None and a.limit == 100 and a.loops == 3  # its share may rise to all 100/s: ceil(110 / 40)
    b = limit_cap(config.queues["b"], rows, now_ms=NOW_MS, fresh_s=120)
    assert b is not None and b.limit == 30 and b.loops == 1  # its own 30/s is the tighter
    assert limit_cap(config.queues["c"], rows, now_ms=NOW_MS, fresh_s=120) is None  # no limit at all
