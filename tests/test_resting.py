"""A resting queue (min_loops 0) in the whole sandbox: a few messages, fewer than its first step, are
picked up by restart's depth read with no alarm, handled, and the queue goes back to no loops after its
cool-down. Also the CloudWatch stand-in's publication rules (sandbox/sqs_metrics.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from conftest import ACCOUNT, REGION, make_queue, send

from poller.lease.tokens import TokenStore, bind_token_table
from sandbox.environment import Sandbox, Timings
from sandbox.sqs_metrics import VISIBLE, MetricTimings, SqsMetrics, install_activity_hook

CONFIG = Path(__file__).with_name("fixtures") / "resting-queues.yml"


def _until(what: str, check: Callable[[], bool], limit_s: float = 30.0) -> None:
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {limit_s:g} s")


def test_a_resting_queue_wakes_drains_and_rests_again() -> None:
    with Sandbox(CONFIG, prefix="rest-test", timings=Timings(restart_period_s=2.0)) as box:
        url = box.queue_url("resting")
        sqs = boto3.client("sqs", region_name=box.region)
        tokens = TokenStore(bind_token_table(f"{box.prefix}-tokens", region=box.region))

        def depth() -> int:
            attrs = sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
            return sum(int(v) for v in attrs.values())

        box.run_restart()
        time.sleep(1.0)
        assert list(tokens.tokens_of(url)) == []  # at rest: no loop
        send(sqs, url, ["a", "b", "c"])  # under the step's 50: its alarm never fires
        _until("a loop woken by restart", lambda: len(list(tokens.tokens_of(url))) == 1)
        _until("the messages handled", lambda: depth() == 0)
        _until("back to rest after the cool-down", lambda: list(tokens.tokens_of(url)) == [])
        assert not [change for change in box.evaluator.changes if change[2] == "ALARM"]


def test_datapoints_come_once_a_period_late_and_not_from_a_dormant_queue(sqs: Any) -> None:
    install_activity_hook()
    url = make_queue(sqs, "metered")
    now = [0.0]
    timings = MetricTimings(period_s=1, lag_s=1, dormant_after_s=10, resume_after_s=5)
    metrics = SqsMetrics(account=ACCOUNT, region=REGION, timings=timings, clock=lambda: now[0])

    def period(seconds: float = 1) -> float | None:
        now[0] += seconds
        metrics.collect(["metered"])
        return metrics.latest("metered", VISIBLE)

    send(sqs, url, ["x", "y"])
    metrics.collect(["metered"])
    assert metrics.latest("metered", VISIBLE) is None  # sampled, not yet published
    assert period() == 2.0
    sqs.purge_queue(QueueUrl=url)
    assert period() == 2.0  # still the datapoint sampled a period ago
    assert period() == 0.0
    assert period(12) is None and not metrics.reporting("metered")  # idle past dormant_after: no data
    sqs.send_message(QueueUrl=url, MessageBody="z")  # active again
    assert period() is None and period(3) is None  # within the resume delay
    assert period(3) is None  # sampled again, shown one lag later
    assert period() == 1.0 and metrics.reporting("metered")


def test_an_api_call_keeps_an_empty_queue_reporting(sqs: Any) -> None:
    install_activity_hook()
    url = make_queue(sqs, "read-every-minute")
    now = [0.0]
    metrics = SqsMetrics(account=ACCOUNT, region=REGION, timings=MetricTimings(1, 1, 10, 5), clock=lambda: now[0])
    for _ in range(30):
        now[0] += 1
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])  # restart's read
        metrics.collect(["read-every-minute"])
    assert metrics.reporting("read-every-minute") and metrics.latest("read-every-minute", VISIBLE) == 0.0
