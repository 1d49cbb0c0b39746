"""The timer planner's arithmetic (Little's law, the 900 s cap) and the jitter range: pure logic."""

from __future__ import annotations

import math
import random

import pytest

from producer.plan import SQS_MAX_DELAY_S, Jitter, parse_jitter, plan_spread


def test_vendor_example_spreads_40000_half_second_jobs_over_800_s_at_25_at_once() -> None:
    plan = plan_spread(40_000, 0.5, 25)
    assert plan.wanted_window_s == 800.0  # N * T / C
    assert plan.window_s == 800.0
    assert plan.arrival_rate_per_s == 50.0  # C / T
    assert plan.expected_peak_concurrency == 25.0
    assert plan.finish_s == 800.5  # window + T
    assert not plan.capped
    assert "window 800 s" in plan.summary()
    assert "expected peak concurrency 25.0" in plan.summary()


def test_a_window_beyond_900_s_is_capped_and_the_higher_peak_reported() -> None:
    plan = plan_spread(100_000, 0.5, 25)
    assert plan.wanted_window_s == 2000.0
    assert plan.window_s == SQS_MAX_DELAY_S == 900
    assert plan.capped
    assert plan.expected_peak_concurrency == pytest.approx(100_000 * 0.5 / 900)  # 55.6, above 25
    assert plan.finish_s == 900.5
    assert plan.window_peak_concurrency == plan.expected_peak_concurrency
    assert "needs 2000 s, but message timers stop at 900 s: timers alone let 55.6 run at once, above the 25" in (
        plan.summary()
    )


def test_the_consumers_rate_bounds_the_peak_and_moves_the_finish_out() -> None:
    plan = plan_spread(100_000, 0.5, 25, consumer_rate_per_s=50)
    assert plan.expected_peak_concurrency == 25.0  # 50 jobs/s * 0.5 s
    assert plan.window_peak_concurrency == pytest.approx(55.56, abs=0.01)
    assert "timers alone let 55.6 run at once; the consumers' 50 jobs/s hold it at 25.0" in plan.summary()
    assert plan.consumer_bound
    assert plan.finish_s == 2000.5  # 100,000 / 50 + T
    assert "need 2000 s: jobs wait in the queue" in plan.summary()
    # A consumer faster than the window changes nothing.
    fast = plan_spread(40_000, 0.5, 25, consumer_rate_per_s=100)
    assert (fast.window_s, fast.expected_peak_concurrency, fast.finish_s, fast.consumer_bound) == (
        800.0,
        25.0,
        800.5,
        False,
    )


@pytest.mark.parametrize(("jobs", "concurrency"), [(1, 50), (30, 50), (50, 50)])
def test_jobs_that_fit_at_once_are_not_delayed(jobs: int, concurrency: int) -> None:
    plan = plan_spread(jobs, 2.0, concurrency)
    assert (plan.window_s, plan.expected_peak_concurrency, plan.finish_s) == (0.0, float(jobs), 2.0)
    assert math.isinf(plan.arrival_rate_per_s)
    assert {plan.delay_s(i, 0.0, random.Random(1)) for i in range(jobs)} == {0}


def test_just_above_the_concurrency_the_window_is_longer_than_one_job() -> None:
    plan = plan_spread(60, 2.0, 50)
    assert plan.window_s == pytest.approx(2.4)
    assert plan.expected_peak_concurrency == pytest.approx(50.0)


def test_no_jobs_plan_nothing() -> None:
    plan = plan_spread(0, 1.0, 5)
    assert (plan.window_s, plan.arrival_rate_per_s, plan.expected_peak_concurrency, plan.finish_s) == (0, 0, 0, 0)


def test_even_delays_fill_equal_slots_in_whole_seconds_less_the_time_already_spent() -> None:
    plan = plan_spread(100, 1.0, 10)  # window 10 s: a slot of 0.1 s per message
    rand = random.Random(0)
    assert [plan.delay_s(i, 0.0, rand) for i in (0, 14, 15, 50, 99)] == [0, 1, 2, 5, 10]
    # Sent 3 s into the send, message 50 (offset 5 s) waits only 2 s more; message 20 (2 s) not at all.
    assert plan.delay_s(50, 3.0, rand) == 2
    assert plan.delay_s(20, 3.0, rand) == 0


def test_random_spread_stays_within_each_slot_and_repeats_with_the_seed() -> None:
    plan = plan_spread(1000, 0.9, 1, spread="random")  # window 900 s, slot 0.9 s
    indexes = range(0, 1000, 7)
    first = [plan.offset_s(i, random.Random(i)) for i in indexes]
    assert first == [plan.offset_s(i, random.Random(i)) for i in indexes]
    for i, offset in zip(indexes, first, strict=True):
        assert i * 0.9 <= offset < (i + 1) * 0.9 + 1e-9
    even = plan_spread(1000, 0.9, 1)
    assert sum(offset != even.offset_s(i, random.Random(i)) for i, offset in zip(indexes, first, strict=True)) > 100


def test_delays_stay_within_what_sqs_accepts() -> None:
    plan = plan_spread(10, 500.0, 1)  # wants 5000 s
    rand = random.Random(0)
    delays = [plan.delay_s(i, elapsed, rand) for i in range(10) for elapsed in (0.0, 899.0, 2000.0)]
    assert min(delays) == 0
    assert max(delays) <= SQS_MAX_DELAY_S


@pytest.mark.parametrize(
    ("args", "kwargs", "named"),
    [
        ((-1, 1.0, 1), {}, "jobs"),
        ((1, 0.0, 1), {}, "mean job time"),
        ((1, 1.0, 0), {}, "max concurrency"),
        ((1, 1.0, 1), {"consumer_rate_per_s": 0}, "consumer rate"),
        ((1, 1.0, 1), {"max_window_s": 901}, "max window"),
    ],
)
def test_bad_targets_are_named(args: tuple[int, float, int], kwargs: dict[str, float], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        plan_spread(*args, **kwargs)  # type: ignore[arg-type]


def test_jitter_is_parsed_checked_and_reproducible() -> None:
    assert parse_jitter("10-100") == Jitter(10, 100)
    assert parse_jitter(" 30 ") == Jitter(30, 30)
    for bad in ("100-10", "a-b", "0-901", "-5", "1.5-3"):
        with pytest.raises(ValueError, match="jitter"):
            parse_jitter(bad)
    jitter = Jitter(10, 100)
    delays = [jitter.delay_s(i, 0.0, random.Random(3)) for i in range(50)]
    assert delays == [jitter.delay_s(i, 0.0, random.Random(3)) for i in range(50)]
    spread = [jitter.delay_s(i, 0.0, rand) for rand in [random.Random(5)] for i in range(500)]
    assert min(spread) >= 10 and max(spread) <= 100 and len(set(spread)) > 50
