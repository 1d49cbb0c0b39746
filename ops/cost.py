"""``sqs-loops cost``: what a workload costs in us-east-1 with sqs-loops, with Lambda's SQS trigger (the
event source mapping, on-demand and provisioned mode) and with the 2016 recursive design (docs/cost.md).

Calls per message and per idle minute are the measured ones (``python -m bench``, docs/benchmarks.md);
prices are the us-east-1 list prices of the project's AWS-FACTS.md. Free tiers are left out. A month is
30 days. Durations are billed per millisecond, as Lambda does."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from poller.metrics import ALL_METRICS

MONTH_S = 30 * 24 * 3600
MINUTES_PER_MONTH = MONTH_S / 60
HOURS_PER_MONTH = MONTH_S / 3600
SQS_BATCH = 10  # ReceiveMessage returns at most 10 messages: one receive and one batch delete per 10


@dataclass(frozen=True)
class Prices:
    """us-east-1 list prices in USD (AWS-FACTS.md); ``epu_hour`` is provisioned mode's price per event
    poller unit hour for SQS (November 2025), billed per second with a one-minute minimum."""

    lambda_request: float = 0.20 / 1e6
    gb_s_arm64: float = 0.0000133334
    gb_s_x86: float = 0.0000166667
    sqs_request: float = 0.40 / 1e6
    dynamodb_write: float = 0.625 / 1e6
    dynamodb_read: float = 0.125 / 1e6
    alarm_month: float = 0.10
    custom_metric_month: float = 0.30  # the first 10,000; billed for each hour a metric receives data
    epu_hour: float = 0.00925


RESTING_METRICS_PER_QUEUE = 3
"""Metrics a resting queue with loops (``min_loops`` >= 1) still sends every hour: Recursions (each loop
step) and restart's LiveLoops and WantedLoops (each minute). A queue at rest with no loops (``min_loops: 0``)
sends none: restart writes the two gauges only while a queue has or wants loops (scaler/control.py)."""

RESTART_RUNS_PER_MONTH = MINUTES_PER_MONTH
"""restart runs every minute, for the whole deployment."""
RESTART_DEPTH_READS = 1
"""GetQueueAttributes calls restart makes per queue and run (docs/scaling.md#two-paths)."""
RESTART_TOKEN_READS = 1
"""Consistent token queries per queue and run (one read serves revive and reconcile): one read unit on a
small queue."""
RESTART_MS_PER_QUEUE = 10.0
"""restart's billed time per configured queue: 1,000 resting queues took 8 s with 15 ms added to every call,
32 at once (``python -m bench``: restart_1000_s, docs/benchmarks.md; the moto server was the bottleneck,
two 15-ms calls on 32 threads would take 0.9 ms a queue): rounded up."""
RESTART_BASE_MS = 150.0
"""restart's time whatever the queue count: DescribeAlarms pages, the overrides and cool-down queries,
the orphan scan (one queue took 0.16 s warm, with 15 ms added to every call, in the same benchmark)."""
RESTART_MEMORY_MB = 128  # serverless.yml's memorySize for every function (docs/benchmarks.md: rss_mb)


def control_plane_per_queue(w: Workload, p: Prices) -> float:
    """One queue's share of restart a month: its depth read and token queries each minute, its share of
    restart's duration and invocations."""
    reads = RESTART_RUNS_PER_MONTH * (RESTART_DEPTH_READS * p.sqs_request + RESTART_TOKEN_READS * p.dynamodb_read)
    gb_s = (p.gb_s_arm64 if w.arch == "arm64" else p.gb_s_x86) * RESTART_MEMORY_MB / 1024
    own_ms = RESTART_MS_PER_QUEUE + RESTART_BASE_MS / w.queues
    duration = RESTART_RUNS_PER_MONTH * own_ms / 1000 * gb_s
    invocations = RESTART_RUNS_PER_MONTH * p.lambda_request / w.queues
    return reads + duration + invocations


@dataclass(frozen=True)
class CallRates:
    """AWS calls of one consumer design: per message at full backlog, per minute on an empty queue."""

    sqs_per_message: float
    dynamodb_per_message: float
    invocations_per_message: float  # Lambda requests (each a billed invocation)
    sqs_per_idle_minute: float
    dynamodb_per_idle_minute: float
    invocations_per_idle_minute: float


# Measured with `python -m bench` (full run of 2026-11-22, bench/results.json, docs/benchmarks.md;
# heartbeat_s 75): one 900-s invocation at full backlog handled 16,730 messages with 1,673 receives, 1,673
# batch deletes, 12 DynamoDB writes (claim and heartbeats) and 1 recursion; on an empty queue, over 125.55
# minutes: 378 long polls, 99 DynamoDB writes, 9 recursions (an invocation polls ~837 s: it keeps
# handler_timeout_s + 3 s).
# Since issue 13, a loop at full backlog also reads the depth every 6 s: 139 GetQueueAttributes more in
# that invocation (0.0083 a message, quick bench on the branch).
SQS_LOOPS = CallRates(0.2083, 0.00072, 0.00006, 3.011, 0.789, 0.072)
# The 2016 recursive design, measured by the same benchmark: per receive one heartbeat, one receive, one
# delete per message and one recursion (a new invocation).
RECURSIVE_2016 = CallRates(1.1, 0.1, 0.1, 3.0, 3.0, 3.0)
# The trigger: per batch one receive, one batch delete (made by Lambda's pollers, billed to the queue's
# owner) and one invocation; at rest its pollers long-poll (trigger_idle_receives_per_minute).
TRIGGER = CallRates(0.2, 0.0, 0.1, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Workload:
    """What the user runs. Times in milliseconds, memory in MB."""

    messages_per_day: float = 1_000_000
    queues: int = 1
    loops: int = 1  # min_loops: loops per queue that run even when the queue is empty
    memory_mb: int = 128
    handler_ms: float = 100.0  # per batch of 10
    arch: str = "arm64"
    alarms_per_queue: int = 2  # one per scale step (sqs-loops only)
    custom_metrics_per_queue: int = len(ALL_METRICS)  # EMF metrics with data in a busy month (0: poller.metrics off)
    call_ms: float = 15.0  # what one SQS or DynamoDB call takes in the region (a loop waits for it, billed)
    trigger_idle_receives_per_minute: float = 15.0  # 5 pollers, each a 20-s long poll
    provisioned_pollers: int = 2  # provisioned mode's minimum for SQS
    pollers_per_epu: int = 1

    def validate(self) -> None:
        positive = {"queues", "memory_mb", "provisioned_pollers", "pollers_per_epu"}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "arch":
                if value not in ("arm64", "x86"):
                    raise ValueError(f"--arch: expected arm64 or x86, got {value!r}")
            elif value < 0 or (f.name in positive and value < 1):
                raise ValueError(
                    f"--{f.name.replace('_', '-')}: expected a number {'>= 1' if f.name in positive else '>= 0'}, got {value}"
                )


@dataclass(frozen=True)
class Estimate:
    """One design's cost, in USD."""

    design: str
    per_million: float  # processing a million messages at full backlog (duration + requests)
    at_rest_per_queue_month: float  # a queue that receives nothing for a month
    month: float  # the workload for a month: at rest or busy, whichever costs more time, plus the requests
    notes: list[str] = field(default_factory=list)


def _gb_s(workload: Workload, prices: Prices) -> float:
    rate = prices.gb_s_arm64 if workload.arch == "arm64" else prices.gb_s_x86
    return rate * workload.memory_mb / 1024


def _requests(rates: CallRates, prices: Prices, *, messages: float = 0.0, idle_minutes: float = 0.0) -> float:
    sqs = rates.sqs_per_message * messages + rates.sqs_per_idle_minute * idle_minutes
    dynamodb = rates.dynamodb_per_message * messages + rates.dynamodb_per_idle_minute * idle_minutes
    invocations = rates.invocations_per_message * messages + rates.invocations_per_idle_minute * idle_minutes
    return sqs * prices.sqs_request + dynamodb * prices.dynamodb_write + invocations * prices.lambda_request


def _always_on(name: str, rates: CallRates, busy_s_per_message: float, w: Workload, p: Prices) -> Estimate:
    """A design whose loops run all the time (sqs-loops, the 2016 design): billed for every second a loop
    lives, waiting or working."""
    messages = w.messages_per_day * 30
    per_million = busy_s_per_message * 1e6 * _gb_s(w, p) + _requests(rates, p, messages=1e6)
    at_rest = MONTH_S * w.loops * _gb_s(w, p) + _requests(rates, p, idle_minutes=MINUTES_PER_MONTH * w.loops)
    busy_s = messages * busy_s_per_message
    loop_s = max(MONTH_S * w.loops * w.queues, busy_s)
    idle_minutes = (loop_s - busy_s) / 60
    month = loop_s * _gb_s(w, p) + _requests(rates, p, messages=messages, idle_minutes=idle_minutes)
    notes = []
    if name == "sqs-loops":
        # With metrics on, the deployment also has its loop-stopped alarm; at rest only the resting metrics get
        # data (and are billed), in a busy month every one (an upper bound: billing is by the hour).
        # The loop-stopped alarm is one per deployment (deploy/alerts.py): each queue pays its share.
        alarms = w.alarms_per_queue + (1 / w.queues if w.custom_metrics_per_queue else 0)
        resting = min(RESTING_METRICS_PER_QUEUE if w.loops else 0, w.custom_metrics_per_queue)
        busy = w.custom_metrics_per_queue if w.messages_per_day else resting
        control = control_plane_per_queue(w, p)
        at_rest += alarms * p.alarm_month + resting * p.custom_metric_month + control
        month += (alarms * p.alarm_month + busy * p.custom_metric_month + control) * w.queues
        notes.append(
            f"includes the depth alarms and a share of the loop-stopped alarm, {busy} custom metrics a queue ({resting} at rest) and "
            f"a queue's share of restart (depth read and token queries each minute): ${control:.3f} a month"
        )
    return Estimate(name, per_million, at_rest, month, notes)


def estimate(w: Workload, p: Prices | None = None, rates: CallRates = SQS_LOOPS) -> list[Estimate]:
    """The four designs for workload ``w``, sqs-loops first."""
    p = p or Prices()
    w.validate()
    batch_s = w.handler_ms / 1000
    call_s = w.call_ms / 1000
    messages = w.messages_per_day * 30
    # A loop also waits for its receive and delete (and its heartbeats): Lambda bills that time.
    ours_s = (batch_s + 2 * call_s) / SQS_BATCH + (rates.dynamodb_per_message + rates.invocations_per_message) * call_s
    # The 2016 design: heartbeat, receive and ten single deletes per batch, one invocation each.
    theirs_s = (batch_s + (2 + SQS_BATCH) * call_s) / SQS_BATCH
    trigger_s = batch_s / SQS_BATCH  # Lambda's pollers receive and delete outside the function's time
    trigger_per_million = trigger_s * 1e6 * _gb_s(w, p) + _requests(TRIGGER, p, messages=1e6)
    trigger_month = messages * trigger_s * _gb_s(w, p) + _requests(TRIGGER, p, messages=messages)
    idle_receives = w.trigger_idle_receives_per_minute * MINUTES_PER_MONTH * p.sqs_request
    epus = math.ceil(w.provisioned_pollers / w.pollers_per_epu)
    epu_month = epus * HOURS_PER_MONTH * p.epu_hour
    return [
        _always_on("sqs-loops", rates, ours_s, w, p),
        Estimate(
            "trigger (on-demand)",
            trigger_per_million,
            idle_receives,
            trigger_month + idle_receives * w.queues,
            ["at rest: its pollers' empty long polls"],
        ),
        Estimate(
            "trigger (provisioned)",
            trigger_per_million,
            epu_month + idle_receives,
            trigger_month + (epu_month + idle_receives) * w.queues,
            [f"{epus} EPU at ${p.epu_hour:g}/h (us-east-1 list price), minimum pollers only"],
        ),
        _always_on("2016 design", RECURSIVE_2016, theirs_s, w, p),
    ]


def rates_from_bench(path: Path) -> CallRates:
    """The sqs-loops call rates of a ``python -m bench --json`` result."""
    results: dict[str, Any] = json.loads(path.read_text())
    busy, idle = results["details"]["full_backlog"], results["details"]["idle"]

    def per(calls: dict[str, int], service: str, divisor: float) -> float:
        return sum(n for name, n in calls.items() if name.startswith(service + ".")) / divisor

    messages, minutes = busy["messages"], idle["minutes"]
    return CallRates(
        sqs_per_message=per(busy["calls"], "sqs", messages),
        dynamodb_per_message=per(busy["calls"], "dynamodb", messages),
        invocations_per_message=per(busy["calls"], "lambda", messages),
        sqs_per_idle_minute=per(idle["calls"], "sqs", minutes),
        dynamodb_per_idle_minute=per(idle["calls"], "dynamodb", minutes),
        invocations_per_idle_minute=per(idle["calls"], "lambda", minutes),
    )


def break_even_epu_hour(w: Workload, p: Prices | None = None, rates: CallRates = SQS_LOOPS) -> float:
    """The EPU-hour price above which a resting queue costs more with provisioned mode than with sqs-loops."""
    p = replace(p or Prices(), epu_hour=0.0)
    ours, _, provisioned, _ = estimate(w, p, rates)
    epus = math.ceil(w.provisioned_pollers / w.pollers_per_epu)
    return max(0.0, ours.at_rest_per_queue_month - provisioned.at_rest_per_queue_month) / (epus * HOURS_PER_MONTH)


def as_json(estimates: list[Estimate], w: Workload, break_even: float) -> dict[str, Any]:
    """What ``sqs-loops cost --json`` prints: the workload, each design's figures (USD), the break-even."""
    return {
        "workload": asdict(w),
        "designs": [asdict(e) for e in estimates],
        "break_even_epu_hour": round(break_even, 6),
    }


def table(estimates: list[Estimate], w: Workload) -> str:
    """A plain table, one row per design."""
    head = f"{'design':24} {'$ per million msgs':>18} {'$ at rest/queue/month':>22} {'$ per month (workload)':>23}"
    lines = [
        f"workload: {w.messages_per_day:,.0f} messages/day on {w.queues} queue(s), {w.loops} loop(s) each, "
        f"{w.memory_mb} MB {w.arch}, handler {w.handler_ms:g} ms per batch of 10",
        head,
        "-" * len(head),
    ]
    for e in estimates:
        lines.append(f"{e.design:24} {e.per_million:>18.4f} {e.at_rest_per_queue_month:>22.2f} {e.month:>23.2f}")
    cheapest = min(estimates, key=lambda e: e.month)
    lines.append(f"cheapest for this workload: {cheapest.design}")
    lines += [f"note ({e.design}): {n}" for e in estimates for n in e.notes]
    return "\n".join(lines)
