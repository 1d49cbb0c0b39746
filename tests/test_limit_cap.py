"""The limit cap without AWS: a loop's pace from its batches, and the loops a rate limit keeps busy
(docs/scaling.md#limit-cap)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from poller.config import parse_config
from poller.lease.pace import Pace, PaceFigures
from poller.lease.tokens import TokenState
from scaler.cooldown import held_loops, remember
from scaler.limit_cap import WARM_UP_S, cap_loops, limit_cap
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
        pace.batch(handed=8, waited_s=0.925, received_at=now + 0.9, now=now + 1.0)  # waited before the receive
        now += 1.0
    figures = pace.figures()
    assert figures is not None
    assert figures.rps == pytest.approx(8 / 0.075, rel=0.01)  # ~107/s when not waiting
    assert figures.wait == pytest.approx(0.925, abs=0.001)


def test_a_loop_says_nothing_before_it_has_done_enough_work() -> None:
    pace = Pace(0.0)
    assert pace.figures() is None
    pace.batch(handed=1, waited_s=0.0, received_at=0.0, now=0.2)
    pace.batch(handed=0, waited_s=0.0, received_at=0.2, now=30.0)  # time enough, but one record says too little
    assert pace.figures() is None
    pace.batch(handed=9, waited_s=0.0, received_at=30.0, now=30.5)
    figures = pace.figures()
    assert figures is not None and figures.wait == 0.0


def test_a_loop_that_mostly_waits_still_reports() -> None:
    pace = Pace(0.0)
    for second in range(1, 121):  # a share of 1 a second, 10 ms of work each: 1 % of the time working
        pace.batch(handed=1, waited_s=0.99, received_at=second - 1.0, now=float(second))  # waits in the dispatch
    figures = pace.figures()
    assert figures is not None and figures.rps == pytest.approx(100, rel=0.01) and figures.wait > 0.98


def test_a_slower_handler_shows_in_the_pace_within_a_minute() -> None:
    pace = Pace(0.0)
    now = 0.0
    for _ in range(120):  # 100/s unwaited
        pace.batch(handed=10, waited_s=0.9, received_at=now, now=now + 1.0)
        now += 1.0
    fast = pace.figures()
    for _ in range(60):  # the handler is 5x slower: 20/s, no more waiting
        pace.batch(handed=20, waited_s=0.0, received_at=now, now=now + 1.0)
        now += 1.0
    slow = pace.figures()
    assert fast is not None and slow is not None
    assert fast.rps == pytest.approx(100, rel=0.01)
    assert slow.rps < 40 and slow.wait < fast.wait


def test_a_wait_longer_than_the_cycle_counts_as_the_cycle() -> None:
    pace = Pace(0.0)
    pace.batch(handed=5, waited_s=10.0, received_at=1.0, now=2.0)  # waits counted before the cycle began
    pace.batch(handed=50, waited_s=0.0, received_at=2.0, now=4.0)
    figures = pace.figures()
    assert figures is not None and figures.wait <= 1.0 and figures.rps > 0


@pytest.mark.parametrize("waits_before_receive", [False, True])
def test_a_loop_that_rested_on_empty_long_polls_reports_its_pace_not_the_rest(waits_before_receive: bool) -> None:
    """The loop's step began 450 s before the backlog came (long polls, all empty); then 60 batches of 10
    records, each 90 ms of work and 0.24 s of waiting for a turn (30/s): 111/s unwaited, 73 % waiting.
    (A first batch whose turn was slept for before its receive counts no work: one batch's error.)"""
    pace = Pace(0.0)
    now = 450.0
    for _ in range(60):
        received_at = now + 0.24 if waits_before_receive else now  # a turn slept for, or waited in the dispatch
        pace.batch(handed=10, waited_s=0.24, received_at=received_at, now=now + 0.33)
        now += 0.33
    figures = pace.figures()
    assert figures is not None
    assert figures.rps == pytest.approx(10 / 0.09, rel=0.02)
    assert figures.wait == pytest.approx(0.24 / 0.33, abs=0.01)


def test_a_batch_not_sampled_only_ends_its_cycle() -> None:
    """A new lane's probe (poller/loop/batch.py): 1 record after 6.5 s waiting and 0.9 s of start-up. The
    figures are those of the batches after it, as if the loop had begun when the probe ended."""
    probed, after = Pace(0.0), Pace(7.4)
    probed.batch(handed=1, waited_s=6.5, received_at=0.1, now=7.4, sampled=False)
    now = 7.4
    for _ in range(20):  # 10 records in 0.25 s of work and 0.1 s waiting for turns
        for pace in (probed, after):
            pace.batch(handed=10, waited_s=0.1, received_at=now, now=now + 0.35)
        now += 0.35
    assert probed.figures() == after.figures()
    assert after.figures() == PaceFigures(rps=40.0, wait=round(0.1 / 0.35, 3))


def test_a_thin_trickle_counts_only_the_batches_not_the_polls_between_them() -> None:
    pace = Pace(0.0)
    for n in range(1, 41):  # 10 records every 5 s, handled in 0.2 s: the loop polls empty in between
        pace.batch(handed=10, waited_s=0.0, received_at=5.0 * n, now=5.0 * n + 0.2)
    figures = pace.figures()
    assert figures is not None and figures.rps == pytest.approx(50, rel=0.01) and figures.wait == 0.0


def test_a_busy_loops_receive_and_delete_between_batches_count_as_its_work() -> None:
    pace = Pace(0.0)
    now = 0.0
    for _ in range(60):  # a receive of 0.1 s, then 10 records in 0.1 s: 50/s, not the 100/s of the dispatch
        pace.batch(handed=10, waited_s=0.0, received_at=now + 0.1, now=now + 0.2)
        now += 0.2
    figures = pace.figures()
    assert figures is not None and figures.rps == pytest.approx(50, rel=0.01)


# -- the cap ---------------------------------------------------------------------------------------------


def figs(*pairs: tuple[float, float]) -> list[PaceFigures]:
    return [PaceFigures(rps, wait) for rps, wait in pairs]


def test_a_limit_one_loop_saturates_needs_one_loop() -> None:
    cap = cap_loops(30, figs((107, 0.93), (110, 0.92), (104, 0.94), (108, 0.93)), live=4)
    assert cap.loops == 1 and cap.binds and cap.keep_while_waiting == 1
    assert cap.describe() == "1 loop keeps 30/s busy"
    assert cap.fields()["figures"] == 4 and cap.fields()["wait"] == pytest.approx(0.93, abs=0.01)


def test_a_handler_five_times_slower_needs_more_loops() -> None:
    cap = cap_loops(30, figs((21.4, 0.0)), live=1)  # 107/s / 5
    assert cap.loops == 2  # ceil(30 / 21.4)
    slower = cap_loops(30, figs((10.0, 0.0)), live=1)
    assert slower.loops == 3 and slower.describe() == "3 loops keep 30/s busy"


def test_no_headroom_loop_when_the_loops_the_pace_needs_fill_the_limit() -> None:
    # 2 x 25 = 50 exactly: two loops first (one reported so far), ...
    assert cap_loops(50, figs((25, 0.0)), live=1).loops == 2
    # ... and two they stay when the two hand over the whole limit (or wait for it): no third loop
    assert cap_loops(50, figs((25, 0.0), (25, 0.0)), live=2).loops == 2
    assert cap_loops(50, figs((25.5, 0.12), (25.5, 0.12)), live=2).loops == 2
    # a measured pace a record or so below 25/s is still two loops filling 50/s (not ceil(50 / 24.99) = 3)
    assert cap_loops(50, figs((24.99, 0.25), (25.0, 0.22)), live=2).loops == 2
    assert cap_loops(50, figs((24.0, 0.0), (24.0, 0.0)), live=2).loops == 3  # 4 % short: a third loop
    # two that leave more than 5 % of it unused without waiting for it get the headroom loop
    short = cap_loops(50, figs((25, 0.08), (25, 0.08)), live=2)
    assert short.loops == 3 and short.spare == 3 and not short.binds
    # three waiting a third of their time: two would do, but the cool-down, not the waiting, removes the third
    three = cap_loops(50, figs((25, 0.33), (25, 0.33), (25, 0.33)), live=3)
    assert three.loops == 2 and three.binds and three.keep_while_waiting == 3
    # loops that wait but hand over far less than the limit wait for something else (a downstream's
    # pause, a lane's switch): no headroom loop; waiting most of their time, they bind all the same (more
    # loops would only wait with them), so the cool-down does not keep loops above the cap for them
    stalled = cap_loops(50, figs((700, 0.99), (700, 0.99)), live=2)
    assert stalled.loops == 1 and stalled.binds and stalled.keep_while_waiting == 1
    # 80 % of the limit handed over: waiting 60 % of its time binds, a fifth does not tell
    waiting = cap_loops(50, figs((100, 0.6)), live=1)
    assert waiting.used == pytest.approx(40) and waiting.binds
    unsure = cap_loops(50, figs((50, 0.2)), live=1)
    assert unsure.used == 40 and not unsure.binds and unsure.keep_while_waiting is None


def test_no_figures_grows_one_loop_at_a_time() -> None:
    assert cap_loops(30, [], live=0).loops == 1
    probe = cap_loops(30, figs((0.0, 0.0)), live=2)
    assert probe.loops == 3 and probe.figures == 0 and not probe.binds
    assert probe.describe().startswith("no figures yet: 3 loops at most")
    rows = [row("slot-0001", None), row("slot-0002", None)]
    assert limit_cap(QUEUE, rows, now_ms=NOW_MS, fresh_s=120).loops == 3  # type: ignore[union-attr]


def test_no_figures_adds_no_loop_while_the_last_one_added_has_had_no_time_to_report() -> None:
    young = replace(row("slot-0002", None), created_at=NOW_MS - int(WARM_UP_S * 1000) + 3000)
    rows = [row("slot-0001", None), young]
    held = limit_cap(QUEUE, rows, now_ms=NOW_MS, fresh_s=120)
    assert held is not None and held.loops == 2 and held.figures == 0  # not 3: it waits for slot-0002's figures
    later = limit_cap(QUEUE, rows, now_ms=NOW_MS + 3000, fresh_s=120)
    assert later is not None and later.loops == 3  # slot-0002 had its time: one more again
    assert cap_loops(30, [], live=0, warming=True).loops == 1  # a queue with none still gets one
    no_limit = replace(QUEUE, rate_limit=None)
    assert limit_cap(no_limit, [row("slot-0001", PaceFigures(100, 0.9))], now_ms=NOW_MS, fresh_s=120) is None


def test_only_fresh_figures_count() -> None:
    rows = [
        row("slot-0001", PaceFigures(100, 0.9)),
        row("slot-0002", PaceFigures(5, 0.0), at_ms=NOW_MS - 600_000),  # a dead loop's, ten minutes old
    ]
    cap = limit_cap(QUEUE, rows, now_ms=NOW_MS, fresh_s=120)
    assert cap is not None and cap.loops == 1 and cap.figures == 1
    stale = limit_cap(QUEUE, rows[1:], now_ms=NOW_MS, fresh_s=120)
    assert stale is not None and stale.figures == 0 and stale.loops == 2  # no figures: one more than it has


# -- applied with the rules ------------------------------------------------------------------------------


def test_the_cap_bounds_the_depth_rule_and_min_loops_still_holds() -> None:
    assert combined_loops(QUEUE, {}, 5000, cap=1) == 1
    assert combined_loops(QUEUE, {}, 5000, cap=None) == 4
    assert combined_loops(QUEUE, {}, 5000, cap=2) == 2
    assert combined_loops(QUEUE, {}, 0, cap=3) == 1  # the cap never adds loops the rules do not want
    resting = replace(QUEUE, min_loops=2)
    assert combined_loops(resting, {}, 5000, cap=1) == 2
    assert combined_loops(QUEUE, {}, 5000, cap=1, pinned=3) == 3  # an operator's pin wins


def test_lowering_the_cap_waits_for_the_cool_down_unless_the_loops_wait_for_the_limit() -> None:
    cooldown_s, minute = QUEUE.scale_in_cooldown_s, 60_000
    seen: dict[int, int] = {}
    now = NOW_MS

    def tick(cap: int | None, keep: int | None = None) -> int:
        nonlocal seen
        held = held_loops(seen, now_ms=now, cooldown_s=cooldown_s)
        seen = remember(seen, capped(4, cap), now_ms=now, cooldown_s=cooldown_s, floor=QUEUE.min_loops)
        return combined_loops(QUEUE, {}, 5000, held=held, cap=cap, keep=keep)

    assert tick(None) == 4  # the depth rule alone (no limit's figures to go by)
    for _ in range(cooldown_s // 60 - 1):  # a lower cap whose loops do not wait: the four stay
        now += minute
        assert tick(1) == 4
    now += minute
    assert tick(1) == 1  # a whole cool-down later
    now += minute
    assert tick(3) == 3  # the handler slowed: loops come back at once
    now += minute
    assert tick(1) == 3  # and stay a cool-down again, ...
    now += minute
    assert tick(1, keep=1) == 1  # ... unless the loops report that they wait for the limit
    now += minute
    assert tick(2, keep=3) == 3  # up to the cap with its headroom, the cool-down still decides (it held 3)


def test_a_cut_made_while_the_loops_wait_for_the_limit_is_not_undone_by_the_cool_downs_memory() -> None:
    """A backlog before figures: the cap probes 2, then 3 loops; their figures say one loop fills 30/s and
    that they wait for it, so the count falls to 1. The survivor's wait fades over a minute (it still reads
    what it waited while it shared the limit), so the next figures do not show the limit full: the cut
    holds, rather than the cool-down bringing back the probed loops for the rest of its five minutes."""
    cooldown_s, minute = QUEUE.scale_in_cooldown_s, 60_000
    seen: dict[int, int] = {}
    now = NOW_MS

    def tick(live: int, figures: list[PaceFigures]) -> int:
        nonlocal seen
        cap = cap_loops(30, figures, live=live)
        held = held_loops(seen, now_ms=now, cooldown_s=cooldown_s)
        keep = cap.keep_while_waiting
        seen = remember(
            seen, capped(4, cap.loops), now_ms=now, cooldown_s=cooldown_s, floor=QUEUE.min_loops, at_most=keep
        )
        return combined_loops(QUEUE, {}, 5000, held=held, cap=cap.loops, keep=keep)

    assert tick(1, []) == 2 and tick(2, []) == 3  # no figures: a loop more at each decision
    now += minute
    assert tick(3, [PaceFigures(107, 0.907)] * 3) == 1  # 3 x 107 x 0.093 = 30/s: full, and they wait
    now += minute
    lagging = PaceFigures(107, 0.824)  # alone now, it hands over 30/s, but its faded figures say 19/s
    assert cap_loops(30, [lagging], live=1).binds  # it waits most of its time: the limit binds all the same
    assert tick(1, [lagging]) == 1
    now += minute
    assert tick(1, [PaceFigures(21, 0.0)]) == 2  # the handler slowed: a loop more at once, no cool-down


def test_what_the_cool_down_forgets_while_the_loops_wait_for_the_limit() -> None:
    seen = {2: NOW_MS - 1000, 3: NOW_MS - 1000}
    kept = remember(seen, 1, now_ms=NOW_MS, cooldown_s=300, floor=1, at_most=2)
    assert kept == {2: NOW_MS - 1000}  # 3 is forgotten; 2 (the cap's headroom) is still held
    assert remember(seen, 1, now_ms=NOW_MS, cooldown_s=300, floor=1) == seen  # without: all held


def test_a_shared_downstream_caps_at_the_queues_share_and_the_tighter_limit_holds() -> None:
    config = parse_config(
        "downstreams:\n  vendor: {rate_limit: 100}\n"
        "queues:\n"
        "  a: {queue: a, handler: m.h, downstream: vendor, max_loops: 4}\n"
        "  b: {queue: b, handler: m.h, downstream: vendor, rate_limit: 30, max_loops: 4}\n"
        "  c: {queue: c, handler: m.h, max_loops: 4}\n",
        source="cap-test.yml",
    )
    rows = [row("slot-0001", PaceFigures(40, 0.5))]
    a = limit_cap(config.queues["a"], rows, now_ms=NOW_MS, fresh_s=120)  # share unknown: the whole 100/s
    assert a is not None and a.limit == 100 and a.loops == 3 and a.whole is None  # ceil(100 / 40)
    half = limit_cap(config.queues["a"], rows, now_ms=NOW_MS, fresh_s=120, share=50)
    assert half is not None and half.limit == 50 and half.loops == 2 and half.whole == 100
    assert half.describe() == "2 loops keep 50/s busy (its share of 100/s)"
    b = limit_cap(config.queues["b"], rows, now_ms=NOW_MS, fresh_s=120, share=50)
    assert b is not None and b.limit == 30 and b.loops == 1  # its own 30/s is the tighter
    assert limit_cap(config.queues["c"], rows, now_ms=NOW_MS, fresh_s=120) is None  # no limit at all
