"""The rate share's arithmetic, simulated on a fake clock: loops that come and go never push a 5-s window
over 1.1 x the limit, and the hold-back of a new loop is what makes that so."""

from __future__ import annotations

import heapq
import random

import pytest
from conftest import FakeClock

from poller.downstream.rate import SHARE_REFRESH_S, RateShare

RATE = 50.0  # the vendor's calls a second
WINDOW_S = 5.0


def max_in_window(times: list[float], window_s: float = WINDOW_S) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] > window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def simulate(*, hold_back: bool, seed: int) -> tuple[list[float], list[RateShare]]:
    """Loops with endless work on one queue: 2 loops, scaled up to 10 at t=21 s (rows first, each loop
    starting 0-0.2 s later: just after the old loops counted, the worst moment), down to 4 at t=45 s (a
    retiring loop's row goes once it has stopped)."""
    rand = random.Random(seed)
    clock = FakeClock()
    start = clock.monotonic()
    rows: set[int] = {0, 1}
    spends: list[float] = []
    loops: dict[int, RateShare] = {}
    events: list[tuple[float, int, str]] = [(0.0, n, "start") for n in rows]  # (time, loop, what)
    for n in range(2, 10):
        events.append((21.0, n, "row"))
        events.append((21.0 + rand.uniform(0, 0.2), n, "start"))
    for n in range(4, 10):
        events.append((45.0 + rand.uniform(0, 2), n, "stop"))
    heapq.heapify(events)
    while events:
        at, n, what = heapq.heappop(events)
        if at > 60:
            break
        clock.advance(start + at - clock.monotonic())
        if what == "row":
            rows.add(n)
        elif what == "start":
            loops[n] = RateShare(
                rate_s=RATE,
                max_loops=10,
                count_loops=lambda: len(rows),
                clock=clock,
                fresh_loop=hold_back and n >= 2,
                log_fields={},
            )
            heapq.heappush(events, (at, n, "call"))
        elif what == "stop":
            loops.pop(n, None)
            rows.discard(n)
        elif what == "call" and n in loops:
            turn = loops[n].reserve(1) - start
            spends.append(turn)
            # the call itself takes 0-40 ms; the loop asks for its next turn when it is done
            heapq.heappush(events, (turn + rand.uniform(0, 0.04), n, "call"))
    return spends, list(loops.values())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_window_exceeds_the_limit_while_loops_come_and_go(seed: int) -> None:
    spends, _ = simulate(hold_back=True, seed=seed)
    assert max_in_window(spends) <= 1.1 * RATE * WINDOW_S
    # and the limit is used, not just respected: over the busy minute the loops made ~50 a second
    assert len(spends) >= 0.85 * RATE * 60


def test_without_the_hold_back_a_scale_up_overshoots() -> None:
    spends, _ = simulate(hold_back=False, seed=1)
    assert max_in_window(spends) > 1.1 * RATE * WINDOW_S


def test_a_busy_loop_counts_once_per_refresh_interval() -> None:
    clock = FakeClock()
    share = RateShare(rate_s=10, max_loops=2, count_loops=lambda: 1, clock=clock, fresh_loop=False, log_fields={})
    for _ in range(100):  # 10 s of turns at 10 a second
        share.acquire()
    assert share.counts == pytest.approx(10 / SHARE_REFRESH_S, abs=1)
    assert clock.monotonic() == pytest.approx(9.9)


def test_a_failed_count_falls_back_to_the_smallest_share() -> None:
    def broken() -> int:
        raise OSError("network down")

    clock = FakeClock()
    share = RateShare(rate_s=12, max_loops=4, count_loops=broken, clock=clock, fresh_loop=False, log_fields={})
    share.acquire()
    share.acquire()
    assert share.per_second == 3.0 and clock.monotonic() == pytest.approx(1 / 3)


def test_a_new_loop_waits_a_refresh_interval_and_one_turn() -> None:
    clock = FakeClock()
    share = RateShare(rate_s=20, max_loops=4, count_loops=lambda: 4, clock=clock, fresh_loop=True, log_fields={})
    assert share.receive_limit(10) == 10  # before any count: rate / max_loops = 5 a second, 2 s ahead
    share.acquire()
    assert clock.monotonic() == pytest.approx(SHARE_REFRESH_S + 1 / 5)
