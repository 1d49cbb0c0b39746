"""The cost model's arithmetic (ops/cost.py) and the `sqs-loops cost` command."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from ops.cli import main
from ops.cost import (
    MONTH_S,
    SQS_LOOPS,
    CallRates,
    Estimate,
    Prices,
    Workload,
    break_even_epu_hour,
    control_plane_per_queue,
    estimate,
    rates_from_bench,
)

# us-east-1 list prices, written here from AWS's pricing pages (not read from ops/cost.py), so that a wrong
# figure in the model fails these tests:
LAMBDA_REQUEST = 0.20 / 1e6  # aws.amazon.com/lambda/pricing: $0.20 per 1M requests
LAMBDA_GB_S_ARM = 0.0000133334  # same page: arm64, first 7.5 billion GB-s a month
LAMBDA_GB_S_X86 = 0.0000166667  # same page: x86, first 6 billion GB-s a month
SQS_REQUEST = 0.40 / 1e6  # aws.amazon.com/sqs/pricing: standard queue, $0.40 per 1M requests (after 1M free)
DYNAMODB_WRITE = 0.625 / 1e6  # aws.amazon.com/dynamodb/pricing/on-demand: $0.625 per 1M write request units
DYNAMODB_READ = 0.125 / 1e6  # same page: $0.125 per 1M read request units
ALARM_MONTH = 0.10  # aws.amazon.com/cloudwatch/pricing: standard resolution alarm, per month
CUSTOM_METRIC_MONTH = 0.30  # same page: per metric a month, first 10,000 metrics
EPU_HOUR = 0.00925  # AWS-FACTS.md: provisioned SQS event poller unit, per hour (us-east-1, Nov 2025)
MONTH_MINUTES = 30 * 24 * 60  # the model's month: 30 days

PRICES = Prices()
GB_S_128_ARM = LAMBDA_GB_S_ARM / 8  # USD per second of a 128 MB arm64 function (serverless.yml's memorySize)


def by_design(workload: Workload, rates: CallRates = SQS_LOOPS, prices: Prices = PRICES) -> dict[str, Estimate]:
    return {e.design: e for e in estimate(workload, prices, rates)}


def test_the_model_s_prices_are_the_price_list_s() -> None:
    assert (PRICES.lambda_request, PRICES.gb_s_arm64, PRICES.gb_s_x86) == (
        pytest.approx(LAMBDA_REQUEST),
        LAMBDA_GB_S_ARM,
        LAMBDA_GB_S_X86,
    )
    assert (PRICES.sqs_request, PRICES.dynamodb_write) == (pytest.approx(SQS_REQUEST), pytest.approx(DYNAMODB_WRITE))
    assert (PRICES.alarm_month, PRICES.custom_metric_month) == (ALARM_MONTH, CUSTOM_METRIC_MONTH)
    assert MONTH_S == MONTH_MINUTES * 60


def test_an_idle_loop_costs_what_its_design_says_a_month_of_waiting_costs() -> None:
    """Derived from the design, not from the model's measured rates: a 20-s long poll is 3 receives a
    minute, a 75-s heartbeat 0.8 writes, and one 900-s invocation a claim and a recursion per 15 minutes;
    the loop is billed every second of the month; 2 depth alarms and the loop-stopped one, and 3 metrics
    that still get data at rest. The measured rates (bench/) may differ a little: within 0.5 %."""
    duration = MONTH_MINUTES * 60 * 0.125 * LAMBDA_GB_S_ARM
    calls = MONTH_MINUTES * (3 * SQS_REQUEST + (60 / 75 + 1 / 15) * DYNAMODB_WRITE + (1 / 15) * LAMBDA_REQUEST)
    expected = duration + calls + 3 * ALARM_MONTH + 3 * CUSTOM_METRIC_MONTH
    ours = by_design(Workload())["sqs-loops"]
    # restart's share of the control plane (its depth read and token query each minute): next test.
    restart = control_plane_per_queue(Workload(), PRICES)
    assert ours.at_rest_per_queue_month == pytest.approx(expected + restart, rel=0.005)
    assert 5.5 < expected + restart < 5.8  # docs/cost.md: about $5.64
    plain = by_design(Workload(custom_metrics_per_queue=0))["sqs-loops"]  # poller.metrics: false
    assert plain.at_rest_per_queue_month == pytest.approx(duration + calls + 2 * ALARM_MONTH + restart, rel=0.005)
    busy = by_design(Workload(messages_per_day=1e6))["sqs-loops"]
    # Busy, every metric gets data: 15 custom metrics, and the loop-stopped alarm.
    assert busy.month - by_design(Workload(messages_per_day=1e6, custom_metrics_per_queue=0))["sqs-loops"].month == (
        pytest.approx(15 * CUSTOM_METRIC_MONTH + ALARM_MONTH)
    )


def test_a_resting_queue_without_loops_pays_alarms_and_its_share_of_restart_only() -> None:
    """min_loops 0: no loop, no gauge; a depth read and a token query a minute, and restart's time."""
    w = Workload(loops=0, messages_per_day=0, queues=10, alarms_per_queue=2, custom_metrics_per_queue=0)
    minutes = MONTH_S / 60
    reads = minutes * (SQS_REQUEST + DYNAMODB_READ)
    # restart's time: 10 ms per queue plus a tenth of its 150 ms base; a tenth of its invocations.
    duration = minutes * (0.010 + 0.15 / 10) * GB_S_128_ARM + minutes * LAMBDA_REQUEST / 10
    assert control_plane_per_queue(w, PRICES) == pytest.approx(reads + duration)
    ours = by_design(w)["sqs-loops"]
    assert ours.at_rest_per_queue_month == pytest.approx(2 * ALARM_MONTH + control_plane_per_queue(w, PRICES))
    metrics_on = by_design(replace(w, custom_metrics_per_queue=15))["sqs-loops"]
    # With metrics on: a tenth of the deployment's loop-stopped alarm, and no custom metric (nothing sends
    # one while it rests): the target of issue 13, under the trigger's $0.26.
    assert metrics_on.at_rest_per_queue_month == pytest.approx(ours.at_rest_per_queue_month + 0.01)
    assert metrics_on.at_rest_per_queue_month <= 0.25


def test_cost_json_carries_every_design(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--loops", "0", "--messages-per-day", "0", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["designs"][0]["design"] == "sqs-loops"
    assert figures["workload"]["loops"] == 0 and figures["designs"][0]["at_rest_per_queue_month"] > 0


def test_the_on_demand_trigger_at_rest_pays_only_its_pollers_empty_receives() -> None:
    """AWS-FACTS.md: at rest its 5 pollers long-poll for 20 s, about $0.26 a month."""
    trigger = by_design(Workload())["trigger (on-demand)"]
    assert trigger.at_rest_per_queue_month == pytest.approx(5 * 3 * MONTH_MINUTES * SQS_REQUEST)
    assert trigger.at_rest_per_queue_month == pytest.approx(0.26, abs=0.005)


def test_provisioned_mode_at_rest_at_the_list_price_of_an_epu() -> None:
    """AWS-FACTS.md: the 2-poller floor is about $13.5 a month per mapping (two EPUs all month)."""
    provisioned = by_design(Workload(), prices=Prices(epu_hour=EPU_HOUR))["trigger (provisioned)"]
    assert provisioned.at_rest_per_queue_month == pytest.approx(2 * EPU_HOUR * MONTH_MINUTES / 60 + 0.2592, rel=1e-3)
    assert 13.3 < provisioned.at_rest_per_queue_month < 13.7


def test_per_million_messages_by_hand() -> None:
    w = Workload(handler_ms=100, call_ms=15)
    designs = by_design(w)
    # The trigger: 100 ms of duration per batch of 10, one receive, one delete and one invocation per batch.
    trigger = 1e5 * 0.1 * GB_S_128_ARM + 1e5 * (2 * SQS_REQUEST + LAMBDA_REQUEST)
    assert designs["trigger (on-demand)"].per_million == pytest.approx(trigger)
    # The 2016 design waits for 12 calls per batch and pays a delete per message and an invocation per batch.
    recursive = 1e5 * (0.1 + 12 * 0.015) * GB_S_128_ARM + 1e6 * (
        1.1 * SQS_REQUEST + 0.1 * DYNAMODB_WRITE + 0.1 * LAMBDA_REQUEST
    )
    assert designs["2016 design"].per_million == pytest.approx(recursive)
    assert designs["sqs-loops"].per_million < designs["2016 design"].per_million / 4


def test_a_busy_deployment_is_billed_for_its_busy_time_not_twice() -> None:
    busy = Workload(messages_per_day=200_000_000, handler_ms=100)
    ours = by_design(busy)["sqs-loops"]
    busy_s = 200_000_000 * 30 * (0.1 + 2 * 0.015) / 10
    assert busy_s > MONTH_S  # more than one loop's month: the loops scaled up
    assert ours.month > busy_s * GB_S_128_ARM
    assert ours.month < busy_s * GB_S_128_ARM * 1.1 + 6e9 * 0.2 * SQS_REQUEST * 1.1


def test_where_each_is_cheaper() -> None:
    quiet = by_design(Workload(messages_per_day=10_000))
    assert min(quiet.values(), key=lambda e: e.month).design == "trigger (on-demand)"
    busy = by_design(Workload(messages_per_day=100_000_000))
    assert min(busy.values(), key=lambda e: e.month).design == "sqs-loops"


def test_provisioned_mode_break_even_is_where_its_rest_cost_meets_ours() -> None:
    w = Workload()
    price = break_even_epu_hour(w)
    designs = {e.design: e for e in estimate(w, Prices(epu_hour=price))}
    assert designs["trigger (provisioned)"].at_rest_per_queue_month == pytest.approx(
        designs["sqs-loops"].at_rest_per_queue_month
    )


def test_rates_from_a_bench_result(tmp_path: Path) -> None:
    result = {
        "details": {
            "full_backlog": {
                "messages": 1000,
                "calls": {
                    "sqs.ReceiveMessage": 100,
                    "sqs.DeleteMessageBatch": 100,
                    "dynamodb.UpdateItem": 2,
                    "lambda.Invoke": 1,
                },
            },
            "idle": {
                "minutes": 10.0,
                "calls": {"sqs.ReceiveMessage": 30, "dynamodb.UpdateItem": 10, "lambda.Invoke": 1},
            },
        }
    }
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(result))
    assert rates_from_bench(path) == CallRates(0.2, 0.002, 0.001, 3.0, 1.0, 0.1)


def test_cost_command_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--messages-per-day", "5000000", "--queues", "3", "--memory-mb", "512"]) == 0
    out = capsys.readouterr().out
    assert "5,000,000 messages/day on 3 queue(s)" in out and "512 MB" in out
    for design in ("sqs-loops", "trigger (on-demand)", "trigger (provisioned)", "2016 design"):
        assert design in out
    assert "cheapest for this workload:" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cost", "--queues", "0"], "--queues: expected a number >= 1, got 0"),
        (["cost", "--arch", "sparc"], "--arch: expected arm64 or x86"),
        (["cost", "--handler-ms", "-5"], "--handler-ms: expected a number >= 0"),
    ],
)
def test_cost_command_names_a_bad_input(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err
