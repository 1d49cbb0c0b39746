"""restart over 1,000 resting queues (``min_loops: 0``) against the moto server, with ``round_trip_ms`` added
to every AWS call as the network to a region adds it: its time, and the calls each resting queue costs
a minute (restart runs once a minute). Alarms are left out here: with two steps a queue, DescribeAlarms
would page 2,000 alarms in 20 calls (about 0.3 s more at 15 ms a call)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import boto3
import botocore.handlers

from bench import aws
from bench.harness import RecordingInvoker, create_table
from poller.clock import SYSTEM_CLOCK
from poller.config import parse_config
from poller.lease.tokens import bind_token_table
from scaler.alarms.states import AlarmStates
from scaler.control import ControlPlane
from scaler.depth import QueueDepths, depth_client
from scaler.holds import HoldStore, bind_hold_table
from scaler.overrides import OverrideStore, bind_override_table
from scaler.reconcile import Reconciler

PREFIX = "sqs-loops-bench"


def measure(*, queues: int = 1000, round_trip_ms: float = 15.0, runs: int = 2) -> dict[str, Any]:
    calls: Counter[str] = Counter()

    def on_call(model: Any, **_: Any) -> None:
        calls[f"{model.service_model.service_name}.{model.name}"] += 1

    def wait(**_: Any) -> None:
        time.sleep(round_trip_ms / 1000)

    # Every session made from now on (PynamoDB makes one per thread) waits and counts.
    hooks = [("before-send", wait), ("before-call", on_call)]
    botocore.handlers.BUILTIN_HANDLERS.extend(hooks)
    try:
        return _measure(queues, round_trip_ms, runs, calls)
    finally:
        for hook in hooks:
            botocore.handlers.BUILTIN_HANDLERS.remove(hook)


def _measure(queues: int, round_trip_ms: float, runs: int, calls: Counter[str]) -> dict[str, Any]:
    for cached in (bind_token_table, bind_override_table, bind_hold_table):
        cached.cache_clear()
    feeder = aws.sqs_client()
    for n in range(queues):
        feeder.create_queue(QueueName=f"resting-{n:04d}")
    text = "queues:\n" + "".join(
        f"  q{n:04d}: {{queue: resting-{n:04d}, handler: bench.handlers.noop, min_loops: 0, max_loops: 2}}\n"
        for n in range(queues)
    )
    config = parse_config(text, source="bench-restart")
    tokens = create_table()
    plane = ControlPlane(
        config=config,
        prefix=PREFIX,
        tokens=tokens,
        alarms=AlarmStates(boto3.client("cloudwatch", region_name=aws.REGION), PREFIX),
        overrides=OverrideStore(bind_override_table(aws.TABLE, region=aws.REGION)),
        reconciler=Reconciler(tokens, RecordingInvoker(), f"{PREFIX}-poller", SYSTEM_CLOCK),
        depths=QueueDepths(depth_client(aws.REGION)),
        holds=HoldStore(bind_hold_table(aws.TABLE, region=aws.REGION)),
    )
    seconds = []
    calls.clear()
    for _ in range(runs):
        started = time.monotonic()
        plane.restart(region=aws.REGION, account_id="123456789012")
        seconds.append(time.monotonic() - started)
    per_queue = {name: round(n / runs / queues, 3) for name, n in sorted(calls.items())}
    return {
        "restart_s": round(min(seconds), 2),
        "restart_runs_s": [round(s, 2) for s in seconds],
        "queues": queues,
        "round_trip_ms": round_trip_ms,
        "resting_calls_per_minute": round(sum(calls.values()) / runs / queues, 3),
        "calls_per_queue_and_run": per_queue,
    }
