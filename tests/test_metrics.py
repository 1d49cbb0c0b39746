"""Metrics in embedded metric format: the lines of a real loop run and of a real restart on moto, checked
against the EMF specification, against what the run did, and against every custom metric the dashboard
graphs (same namespace, name, dimensions and unit)."""

from __future__ import annotations

import json
from numbers import Number
from typing import Any

import pytest
import sample_handlers
from conftest import ACCOUNT, REGION, LoopRig
from scaler_rig import build_plane

from deploy.alerts import alert_resources
from deploy.dashboard import dashboard_resources, graphed_metrics
from deploy.render import logical_id
from poller.config import parse_config
from poller.lease.step import LoopStep
from poller.lease.tokens import TokenStore
from poller.metrics import (
    ALL_METRICS,
    MAX_DIMENSIONS_PER_SET,
    MAX_METRICS_PER_DIRECTIVE,
    MAX_VALUES_PER_METRIC,
    NAMESPACE,
    Metric,
    with_metrics,
)

PREFIX = "sqs-loops-metrics"
# The units CloudWatch accepts (EMF specification, MetricDefinition.Unit).
UNITS = {
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
}
CONFIG = """
queues:
  work:
    queue: work-queue
    handler: sample_handlers.dispatch
    dlq: work-queue-dlq
    min_loops: 1
    max_loops: 3
    rate_limit: 40
    scale_steps:
      - {depth: 100, loops: 3}
"""


def emf_problems(line: dict[str, Any]) -> list[str]:
    """What in ``line`` breaks the EMF specification (empty: nothing)."""
    problems = []
    meta = line.get("_aws")
    if not isinstance(meta, dict) or not isinstance(meta.get("Timestamp"), int):
        return ["_aws.Timestamp must be epoch milliseconds (an integer)"]
    directives = meta.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return ["_aws.CloudWatchMetrics must be a non-empty list"]
    for directive in directives:
        if not isinstance(directive.get("Namespace"), str) or not directive["Namespace"]:
            problems.append("a directive needs a Namespace")
        for dimension_set in directive.get("Dimensions", []):
            if len(dimension_set) > MAX_DIMENSIONS_PER_SET:
                problems.append(f"{len(dimension_set)} dimensions in one set")
            problems += [
                f"dimension {d!r} is not a string member" for d in dimension_set if not isinstance(line.get(d), str)
            ]
        metrics = directive.get("Metrics", [])
        if not metrics or len(metrics) > MAX_METRICS_PER_DIRECTIVE:
            problems.append(f"{len(metrics)} metrics in one directive")
        for metric in metrics:
            name, unit = metric.get("Name"), metric.get("Unit")
            if unit not in UNITS:
                problems.append(f"{name}: unit {unit!r}")
            value = line.get(name)
            values = value if isinstance(value, list) else [value]
            if not values or len(values) > MAX_VALUES_PER_METRIC or not all(isinstance(v, Number) for v in values):
                problems.append(f"{name}: value {value!r}")
    return problems


def emitted(lines: list[dict[str, Any]]) -> dict[tuple[str, str, tuple[tuple[str, str], ...]], str]:
    """(namespace, name, dimensions) -> unit of every metric the lines carry."""
    out = {}
    for line in lines:
        for directive in line["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                dims = tuple(sorted((d, line[d]) for d in dimension_set))
                for metric in directive["Metrics"]:
                    out[(directive["Namespace"], metric["Name"], dims)] = metric["Unit"]
    return out


def metric_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if "_aws" in line]


def events(lines: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [line for line in lines if line["event"] == event]


@pytest.fixture
def run_lines(rig_factory: Any, tokens: TokenStore, loop_logs: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """restart starts the queue's loop; that loop runs a step over 23 messages, the first of each batch
    failing; the step ends and recurses. Returns the run's log lines."""
    monkeypatch.setenv("LOOPS_PREFIX", PREFIX)
    rig: LoopRig = rig_factory(rate_limit=40)
    plane = build_plane(tokens, config_text=CONFIG)
    plane.plane.restart(region=REGION, account_id=ACCOUNT)
    ((_, payload),) = plane.invoker.calls
    assert payload["queue_url"] == rig.url
    rig.sqs.send_message_batch(QueueUrl=rig.url, Entries=[{"Id": str(n), "MessageBody": f"m{n}"} for n in range(10)])
    rig.sqs.send_message_batch(
        QueueUrl=rig.url, Entries=[{"Id": str(n), "MessageBody": f"m{n + 10}"} for n in range(10)]
    )
    rig.sqs.send_message_batch(QueueUrl=rig.url, Entries=[{"Id": str(n), "MessageBody": f"n{n}"} for n in range(3)])
    sample_handlers.use(lambda event, _: {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]})
    outcome = rig.run(LoopStep(**payload), budget_s=9)
    assert outcome.succeeded + outcome.failed == 23 and outcome.recursed
    return [json.loads(r.getMessage()) for r in loop_logs.records if r.name == "sqs_loops"]


def test_every_metric_line_follows_the_emf_specification(run_lines: list[dict[str, Any]]) -> None:
    lines = metric_lines(run_lines)
    assert {line["event"] for line in lines} == {"batch", "loop_end", "reconciled"}
    assert {p for line in lines for p in emf_problems(line)} == set()
    assert {(line["deployment"], line["queue"]) for line in lines} == {(PREFIX, "work")}
    namespaces = {d["Namespace"] for line in lines for d in line["_aws"]["CloudWatchMetrics"]}
    assert namespaces == {NAMESPACE}


def test_the_metrics_count_what_the_loop_did(run_lines: list[dict[str, Any]]) -> None:
    batches = events(run_lines, "batch")
    (end,) = events(run_lines, "loop_end")
    (reconciled,) = events(run_lines, "reconciled")
    assert sum(b["MessagesHandled"] for b in batches) == end["succeeded"]
    assert sum(b["MessagesFailed"] for b in batches) == end["failed"] == len(batches)  # one failure a batch
    assert sum(b["MessagesReceived"] for b in batches) == end["received"]
    # One age per message received (moto sets SentTimestamp), none negative; one call per batch.
    assert sum(len(b["MessageAge"]) for b in batches) == end["received"]
    assert all(age >= 0 for b in batches for age in b["MessageAge"])
    assert all(len(b["HandlerDuration"]) == 1 and b["HandlerDuration"][0] <= b["BatchDuration"] for b in batches)
    # A rate-limited fresh loop holds back before its first call: that wait is in ShareWaitTime.
    assert sum(b["ShareWaitTime"] for b in batches) > 0
    assert end["Recursions"] == 1 and "LoopsStopped" not in end  # counted only when a loop stops for good
    assert (reconciled["LoopsStarted"], reconciled["LiveLoops"], reconciled["WantedLoops"]) == (1, 1, 1)
    assert "LoopsRevived" not in reconciled  # no change, no data point: a resting queue pays for the gauges


def test_the_dashboard_graphs_only_metrics_the_code_emits(run_lines: list[dict[str, Any]]) -> None:
    emitted_units = emitted(metric_lines(run_lines))
    config = parse_config(CONFIG, source="metrics-test.yml")
    (dashboard,) = dashboard_resources(config, PREFIX).values()
    body = json.loads(dashboard["Properties"]["DashboardBody"]["Fn::Sub"])
    ours = [(ns, name, dims) for ns, name, dims in graphed_metrics(body) if ns == NAMESPACE]
    assert {name for _, name, _ in ours} >= {"LiveLoops", "WantedLoops", "MessagesHandled", "HandlerDuration"}
    units = {m.name: m.unit for m in ALL_METRICS}
    for namespace, name, dims in ours:
        key = (namespace, name, tuple(sorted(dims.items())))
        assert key in emitted_units, f"the dashboard graphs {key}, which no line of the run carries"
        assert emitted_units[key] == units[name]
    # The SQS graphs name the queue and its DLQ as CloudWatch does.
    sqs = {(name, dims["QueueName"]) for ns, name, dims in graphed_metrics(body) if ns == "AWS/SQS"}
    assert ("ApproximateAgeOfOldestMessage", "work-queue") in sqs
    assert ("ApproximateNumberOfMessagesVisible", "work-queue-dlq") in sqs


def test_a_line_without_metrics_stays_as_it_was_and_limits_are_enforced() -> None:
    metric = Metric("Things", "Count", "batch", "things")
    assert with_metrics({"queue": "q", "x": 1}, {metric: None}, timestamp_ms=1) == {"queue": "q", "x": 1}
    assert with_metrics({"queue": "q"}, {metric: []}, timestamp_ms=1) == {"queue": "q"}
    with pytest.raises(ValueError, match="EMF allows 100"):
        with_metrics({"queue": "q"}, {metric: list(range(101))}, timestamp_ms=1)
    many = {Metric(f"M{n}", "Count", "batch", "m"): 1 for n in range(101)}
    with pytest.raises(ValueError, match="EMF allows 100"):
        with_metrics({"queue": "q"}, many, timestamp_ms=1)
    with pytest.raises(ValueError, match="'queue' field"):
        with_metrics({}, {metric: 1}, timestamp_ms=1)


def test_metrics_off_leaves_the_lines_plain_and_the_stack_without_graphs_of_ours(
    rig_factory: Any, loop_logs: Any
) -> None:
    rig: LoopRig = rig_factory(poller="poller: {metrics: false}")
    rig.sqs.send_message(QueueUrl=rig.url, MessageBody="m")
    rig.run(rig.create_token(), budget_s=6)
    lines = [json.loads(r.getMessage()) for r in loop_logs.records if r.name == "sqs_loops"]
    assert {"batch", "loop_end"} <= {line["event"] for line in lines}
    assert [line for line in lines if "_aws" in line or "MessagesHandled" in line] == []
    config = parse_config("poller: {metrics: false}\n" + CONFIG, source="metrics-off.yml")
    (dashboard,) = dashboard_resources(config, PREFIX).values()
    body = json.loads(dashboard["Properties"]["DashboardBody"]["Fn::Sub"])
    assert {ns for ns, _, _ in graphed_metrics(body)} == {"AWS/SQS"}
    assert [k for k in alert_resources(config, PREFIX, logical_id) if "LoopStopped" in k] == []
