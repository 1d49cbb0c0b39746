"""The ``sqs-loops cost`` command's arguments and output (the model is ops/cost.py)."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from ops.cost import SQS_LOOPS, Prices, Workload, as_json, break_even_epu_hour, estimate, rates_from_bench, table

_WORKLOAD_HELP = {
    "messages_per_day": "messages a day over all queues",
    "queues": "queues",
    "loops": "loops per queue at rest (min_loops)",
    "memory_mb": "Lambda memory in MB",
    "handler_ms": "handler time per batch of 10 messages, in ms",
    "arch": "arm64 (as deployed) or x86",
    "alarms_per_queue": "depth alarms per queue (one per scale step)",
    "custom_metrics_per_queue": "custom metrics a busy queue sends (0: poller.metrics false)",
    "call_ms": "time of one SQS or DynamoDB call in the region, in ms (a loop is billed while it waits)",
    "trigger_idle_receives_per_minute": "the trigger's empty long polls a minute on an idle queue",
    "provisioned_pollers": "provisioned mode's minimum pollers (2 at least for SQS)",
    "pollers_per_epu": "pollers one event poller unit (EPU) carries",
}


def add_cost_command(commands: Any) -> None:
    cost = commands.add_parser(
        "cost",
        help="dollars per million messages and per month: sqs-loops, the SQS trigger, the 2016 design",
        description="Estimate costs in us-east-1 (docs/cost.md). Defaults are the measured figures.",
    )
    defaults = Workload()
    for name, text in _WORKLOAD_HELP.items():
        value = getattr(defaults, name)
        kind = str if isinstance(value, str) else type(value)
        cost.add_argument(f"--{name.replace('_', '-')}", type=kind, default=value, help=f"{text} (default {value})")
    cost.add_argument(
        "--epu-hour-usd",
        type=float,
        default=Prices().epu_hour,
        help=f"provisioned mode's price per EPU hour (default {Prices().epu_hour}: us-east-1, November 2025)",
    )
    cost.add_argument(
        "--bench-json", type=Path, help="take sqs-loops' call rates from a `python -m bench --json` result"
    )
    cost.add_argument("--json", action="store_true", help="print the figures as one JSON object")


def run_cost(args: argparse.Namespace) -> int:
    workload = Workload(**{name: getattr(args, name) for name in _WORKLOAD_HELP})
    prices = replace(Prices(), epu_hour=args.epu_hour_usd)
    rates = rates_from_bench(args.bench_json) if args.bench_json else SQS_LOOPS
    estimates = estimate(workload, prices, rates)
    break_even = break_even_epu_hour(workload, prices, rates)
    if args.json:
        print(json.dumps(as_json(estimates, workload, break_even), indent=2))
        return 0
    print(table(estimates, workload))
    print(f"provisioned mode costs more at rest than sqs-loops above ${break_even:.4f} per EPU hour")
    return 0
