"""The deployment's CloudWatch dashboard, rendered from the config: one band of graphs per queue.

Every custom metric it graphs is one of :mod:`poller.metrics` (name, unit and dimensions from there), so
the graphs show what the loops and the control plane emit; tests/test_metrics.py checks them against the
lines of a real loop run. docs/operations.md draws the layout::

    ┌ orders (orders-prod) ─────────────────────────────────────────────────────────────────┐
    │ depth: visible, in flight │ age of oldest message │ DLQ depth    │ loops: live, wanted  │
    │ handled, failed a minute  │ handler duration      │ message age  │ calls/s vs rate_limit│
    └───────────────────────────────────────────────────────────────────────────────────────┘
"""

from __future__ import annotations

import json
from typing import Any

from poller.config import Config, QueueConfig
from poller.metrics import (
    DEPLOYMENT,
    HANDLER_DURATION,
    LIVE_LOOPS,
    MESSAGE_AGE,
    MESSAGES_FAILED,
    MESSAGES_HANDLED,
    MESSAGES_RECEIVED,
    MESSAGES_RETURNED,
    NAMESPACE,
    QUEUE,
    WANTED_LOOPS,
    Metric,
)

PERIOD_S = 60  # SQS metrics arrive per minute; our own per-minute sums read as "a minute"
WIDTH, HEIGHT = 6, 6  # four graphs side by side on CloudWatch's 24-column grid
HEADER_HEIGHT = 1
QUEUES_PER_DASHBOARD = 50
"""A dashboard holds at most 500 widgets (CloudWatch quota); a queue takes at most 9, so 50 queues fit
with room to spare. A bigger config gets more dashboards: ``<prefix>``, ``<prefix>-2``, ..."""


def dashboard_resources(config: Config, prefix: str) -> dict[str, Any]:
    """``AWS::CloudWatch::Dashboard`` resources (one per :data:`QUEUES_PER_DASHBOARD` queues)."""
    queues = list(config.queues.values())
    out: dict[str, Any] = {}
    for number, start in enumerate(range(0, len(queues), QUEUES_PER_DASHBOARD), 1):
        suffix = "" if number == 1 else f"-{number}"
        body = dashboard_body(queues[start : start + QUEUES_PER_DASHBOARD], prefix, ours=config.poller.metrics)
        out[f"Dashboard{suffix.strip('-')}"] = {
            "Type": "AWS::CloudWatch::Dashboard",
            "Properties": {
                "DashboardName": f"{prefix}{suffix}",
                # The region is the stack's: the body's only ${...}, filled in by Fn::Sub.
                "DashboardBody": {"Fn::Sub": json.dumps(body, separators=(",", ":"))},
            },
        }
    return out


def dashboard_body(queues: list[QueueConfig], prefix: str, *, ours: bool = True) -> dict[str, Any]:
    """The dashboard's widgets; without ``ours`` (``poller.metrics: false``) only the AWS/SQS graphs."""
    widgets: list[dict[str, Any]] = []
    y = 0
    for queue in queues:
        widgets.append(
            {
                "type": "text",
                "x": 0,
                "y": y,
                "width": 4 * WIDTH,
                "height": HEADER_HEIGHT,
                "properties": {"markdown": f"## {queue.key} ({queue.queue_name})"},
            }
        )
        y += HEADER_HEIGHT
        graphs = queue_graphs(queue, prefix)
        if not ours:
            graphs = [g for g in graphs if all(row[0] == "AWS/SQS" for row in g["metrics"])]
        for number, graph in enumerate(graphs):
            widgets.append(
                {
                    "type": "metric",
                    "x": (number % 4) * WIDTH,
                    "y": y + (number // 4) * HEIGHT,
                    "width": WIDTH,
                    "height": HEIGHT,
                    "properties": {"region": "${AWS::Region}", "period": PERIOD_S, "view": "timeSeries", **graph},
                }
            )
        y += 2 * HEIGHT
    return {"widgets": widgets}


def queue_graphs(queue: QueueConfig, prefix: str) -> list[dict[str, Any]]:
    """The graphs of one queue, in the order of the layout above."""
    name = queue.queue_name

    def ours(metric: Metric, stat: str, label: str, **options: Any) -> list[Any]:
        return [NAMESPACE, metric.name, DEPLOYMENT, prefix, QUEUE, queue.key, {"stat": stat, "label": label, **options}]

    graphs: list[dict[str, Any]] = [
        {
            "title": f"{queue.key}: depth",
            "stacked": True,
            "metrics": [
                _sqs("ApproximateNumberOfMessagesVisible", name, "visible"),
                _sqs("ApproximateNumberOfMessagesNotVisible", name, "in flight"),
            ],
        },
        {
            "title": f"{queue.key}: age of oldest message (s)",
            "metrics": [_sqs("ApproximateAgeOfOldestMessage", name, "oldest")],
            **_limit_line(queue.max_age_s, "max_age_s"),
        },
    ]
    if queue.dlq_name is not None:
        graphs.append(
            {
                "title": f"{queue.key}: dead-letter queue",
                "metrics": [_sqs("ApproximateNumberOfMessagesVisible", queue.dlq_name, "in DLQ")],
            }
        )
    graphs += [
        {
            "title": f"{queue.key}: loops",
            "metrics": [ours(LIVE_LOOPS, "Maximum", "live"), ours(WANTED_LOOPS, "Maximum", "wanted")],
            "yAxis": {"left": {"min": 0, "max": queue.max_loops}},
        },
        {
            "title": f"{queue.key}: handled and failed a minute",
            "metrics": [ours(MESSAGES_HANDLED, "Sum", "handled"), ours(MESSAGES_FAILED, "Sum", "failed")],
        },
        {
            "title": f"{queue.key}: handler duration (ms)",
            "metrics": [ours(HANDLER_DURATION, "p50", "p50"), ours(HANDLER_DURATION, "p99", "p99")],
        },
        {
            "title": f"{queue.key}: message age at receive (ms)",
            "metrics": [ours(MESSAGE_AGE, "p50", "p50"), ours(MESSAGE_AGE, "Maximum", "max")],
        },
    ]
    if queue.rate_limit is not None:
        graphs.append(
            {
                "title": f"{queue.key}: calls a second against rate_limit",
                "metrics": [
                    [
                        {
                            "expression": f"(received - returned) / {PERIOD_S}",
                            "label": "messages to the target a second",
                            "id": "calls",
                        }
                    ],
                    ours(MESSAGES_RECEIVED, "Sum", "received", id="received", visible=False),
                    ours(MESSAGES_RETURNED, "Sum", "returned", id="returned", visible=False),
                ],
                **_limit_line(queue.rate_limit, "rate_limit"),
            }
        )
    return graphs


def _sqs(metric: str, queue_name: str, label: str) -> list[Any]:
    return ["AWS/SQS", metric, "QueueName", queue_name, {"stat": "Maximum", "label": label}]


def _limit_line(value: float | None, label: str) -> dict[str, Any]:
    return {} if value is None else {"annotations": {"horizontal": [{"label": label, "value": value}]}}


def graphed_metrics(body: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, metric name, dimensions) of every metric a dashboard body graphs (expressions left out)."""
    found = []
    for widget in body["widgets"]:
        for row in widget.get("properties", {}).get("metrics", []):
            spec = [part for part in row if not isinstance(part, dict)]
            if len(spec) >= 2:
                namespace, name, *pairs = spec
                found.append((namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True))))
    return found
