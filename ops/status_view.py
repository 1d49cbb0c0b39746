"""`sqs-loops status [--watch]`: the status table, once or redrawn every few seconds (rich Live on a
terminal; piped, one table per round)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from ops.console import console, table
from poller.metrics import DEPLOYMENT, MESSAGES_FAILED, MESSAGES_HANDLED, NAMESPACE, QUEUE

WATCH_INTERVAL_S = 5.0
"""How often `status --watch` reads again: each round costs a few reads per queue (SQS, DynamoDB,
CloudWatch), so not faster than a person can follow."""
MAX_QUERIES_PER_CALL = 500
"""GetMetricData takes at most 500 queries a call (3 per queue here)."""
COLUMNS = ("queue", "visible", "in flight", "age s", "dlq", "loops", "handled/min", "failed/min", "alarms", "override")


def recent_metrics(cloudwatch: Any, prefix: str, config: Any, *, now: datetime | None = None) -> dict[str, Any]:
    """Per queue key: the age of the oldest message (s) and messages handled and failed in the last full
    minute, from CloudWatch (one GetMetricData call per 166 queues). None where CloudWatch has no data."""
    end = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    queries, keys = [], {}
    for number, queue in enumerate(config.queues.values()):
        for kind, namespace, name, dims, stat in (
            ("age_s", "AWS/SQS", "ApproximateAgeOfOldestMessage", {"QueueName": queue.queue_name}, "Maximum"),
            ("handled_a_minute", NAMESPACE, MESSAGES_HANDLED.name, {DEPLOYMENT: prefix, QUEUE: queue.key}, "Sum"),
            ("failed_a_minute", NAMESPACE, MESSAGES_FAILED.name, {DEPLOYMENT: prefix, QUEUE: queue.key}, "Sum"),
        ):
            query_id = f"q{number}_{kind}".lower()
            keys[query_id] = (queue.key, kind)
            queries.append(
                {
                    "Id": query_id,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": namespace,
                            "MetricName": name,
                            "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                        },
                        "Period": 60,
                        "Stat": stat,
                    },
                }
            )
    found: dict[str, Any] = {
        key: {"age_s": None, "handled_a_minute": None, "failed_a_minute": None} for key in config.queues
    }
    if not queries:
        return found
    for start in range(0, len(queries), MAX_QUERIES_PER_CALL):
        answer = cloudwatch.get_metric_data(
            MetricDataQueries=queries[start : start + MAX_QUERIES_PER_CALL],
            StartTime=end - timedelta(minutes=5),
            EndTime=end,
            ScanBy="TimestampDescending",
        )
        for result in answer.get("MetricDataResults", []):
            if result.get("Values"):
                key, kind = keys[result["Id"]]
                found[key][kind] = result["Values"][0]
    return found


def status_table(out: Console, report: dict[str, Any]) -> Table:
    rows = []
    for key, q in report.items():
        alarms = " ".join(f"{n}:{s}" for n, s in q["alarms"].items()) or "-"
        override = "-" if q["override"] is None else ("paused" if q["override"] == 0 else f"pinned {q['override']}")
        retiring = f" +{q['retiring_loops']} retiring" if q["retiring_loops"] else ""
        rows.append(
            [
                key,
                q["visible"],
                q["in_flight"],
                _num(q.get("age_s")),
                _num(q["dlq"]),
                f"{q['live_loops']}/{q['wanted_loops']}{retiring}",
                _num(q.get("handled_a_minute")),
                _num(q.get("failed_a_minute")),
                alarms,
                override,
            ]
        )
        if q.get("limited"):
            rows.append([f"  limited: {q['limited']['says']}", *[""] * (len(COLUMNS) - 1)])
        rows += [[f"  error on {token}", error, *[""] * (len(COLUMNS) - 2)] for token, error in q["errors"].items()]
    return table(out, COLUMNS, rows, title="sqs-loops status (loops live/wanted)")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def show_status(
    read: Callable[[], dict[str, Any]],
    *,
    as_json: bool,
    watch: bool,
    interval_s: float = WATCH_INTERVAL_S,
    out: Console | None = None,
    rounds: int | None = None,
) -> None:
    """Print the status once, or (``watch``) every ``interval_s`` until Ctrl-C (``rounds``: stop after so
    many, for tests). ``--json`` prints one JSON document per round."""
    out = out or console()
    done = 0
    if as_json or not watch or not out.is_terminal:
        while True:
            report = read()
            if as_json:
                out.file.write(json.dumps(report, indent=None if watch else 2) + "\n")
                out.file.flush()
            else:
                out.print(status_table(out, report))
            done += 1
            if not watch or (rounds is not None and done >= rounds):
                return
            time.sleep(interval_s)
    with Live(status_table(out, read()), console=out, auto_refresh=False) as live:
        done = 1
        while rounds is None or done < rounds:
            time.sleep(interval_s)
            live.update(status_table(out, read()), refresh=True)
            done += 1
