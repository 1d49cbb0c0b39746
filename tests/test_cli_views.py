"""The CLI's views: `logs QUEUE` from a sandbox's log file and from CloudWatch Logs (moto), the status
table and `status --watch`, plain and without escape codes when piped, JSON with --json."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from ops.cli import main
from ops.console import console
from ops.logs import cloudwatch_lines, counts_from_file, parse_since, queue_lines
from ops.status_view import show_status

CONFIG = "tests/fixtures/deploy-queues.yml"
LINES = [
    {"level": "info", "event": "batch", "queue": "orders", "received": 3, "MessagesHandled": 3, "_aws": {}},
    {"level": "info", "event": "batch", "queue": "billing", "received": 1},
    {"level": "error", "event": "loop_end", "queue": "orders", "reason": "handler_import_error", "error": "no module"},
]
REPORT = {
    "orders": {
        "visible": 5,
        "in_flight": 2,
        "dlq": 0,
        "wanted_loops": 2,
        "live_loops": 1,
        "retiring_loops": 0,
        "errors": {"slot-0002": "handler not importable"},
        "alarms": {"depth-1": "ALARM"},
        "override": None,
        "age_s": 42.0,
        "handled_a_minute": 120.0,
        "failed_a_minute": None,
        "limited": {
            "loops": 1,
            "limit": 30,
            "per_loop": 107,
            "wait": 0.93,
            "figures": 1,
            "says": "1 loop keeps 30/s busy",
        },
    }
}


def test_logs_of_one_queue_from_a_sandbox_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "sandbox.log"
    now = datetime.now(UTC)
    stamp = [(now - timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%S.000Z ") for m in (30, 2, 1)]
    old = {"level": "info", "event": "batch", "queue": "orders", "received": 9}  # before --since
    log.write_text(
        f"{stamp[0]}{json.dumps(old)}\nnot json\n"
        + f"{stamp[1]}{json.dumps(LINES[0])}\n{json.dumps(LINES[1])}\n{stamp[2]}{json.dumps(LINES[2])}\n"
    )
    assert main(["--config", CONFIG, "logs", "orders", "--file", str(log)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert (
        out
        == [
            f"{stamp[1][11:19]} info    batch  received=3",  # the EMF block and the metric copies left out
            f"{stamp[2][11:19]} error   loop_end  reason=handler_import_error  error=no module",
        ]
    )
    assert main(["--config", CONFIG, "logs", "orders", "--file", str(log), "--since", "1h"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["--config", CONFIG, "logs", "orders", "--file", str(log), "--json"]) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == [LINES[0], LINES[2]]
    assert main(["--config", CONFIG, "logs", "nope", "--file", str(log)]) == 2
    assert "no queue with key 'nope'" in capsys.readouterr().err


def test_logs_from_cloudwatch_logs(aws: None) -> None:
    logs = boto3.client("logs", region_name="us-east-1")
    group = "/aws/lambda/p-poller"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    now = int(time.time() * 1000)
    events = [{"timestamp": now + n, "message": json.dumps(line)} for n, line in enumerate(LINES)]
    logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=events)
    got = list(queue_lines(cloudwatch_lines(logs, "p", "orders", since_s=600, follow=False), "orders"))
    assert [line for _, line in got] == [LINES[0], LINES[2]]
    assert [at for at, _ in got] == [now / 1000, (now + 2) / 1000]


def test_since_is_read_with_its_unit() -> None:
    assert (parse_since("30s"), parse_since("10m"), parse_since("2h"), parse_since("1d")) == (30, 600, 7200, 86400)
    with pytest.raises(ValueError, match="like 10m"):
        parse_since("10 minutes")


def test_piped_status_is_a_plain_table_and_watch_prints_each_round() -> None:
    screen = io.StringIO()
    show_status(lambda: REPORT, as_json=False, watch=True, interval_s=0, out=console(screen), rounds=2)
    text = screen.getvalue()
    assert "\x1b[" not in text  # no colour, no redraw when piped
    lines = text.splitlines()
    assert lines[0].startswith("queue") and lines.count(lines[0]) == 2  # one table per round
    row = lines[1].split()
    assert row[:8] == ["orders", "5", "2", "42", "0", "1/2", "120", "-"]
    assert "error on slot-0002" in text and "handler not importable" in text
    assert "limited: 1 loop keeps 30/s busy" in text  # the rate limit's cap (docs/scaling.md#limit-cap)


def test_status_json_watch_is_one_document_a_round() -> None:
    screen = io.StringIO()
    show_status(lambda: REPORT, as_json=True, watch=True, interval_s=0, out=console(screen), rounds=3)
    assert [json.loads(line) for line in screen.getvalue().splitlines()] == [REPORT] * 3


def test_on_a_terminal_watch_is_a_live_view(monkeypatch: Any) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    show_status(lambda: REPORT, as_json=False, watch=True, interval_s=0, out=console(screen), rounds=2)
    assert "\x1b[" in screen.getvalue() and "orders" in screen.getvalue()


def test_handled_a_minute_from_a_sandbox_log_file(tmp_path: Path) -> None:
    log = tmp_path / "sandbox.log"
    now = datetime.now(UTC)
    lines = [
        (now - timedelta(minutes=5), {"event": "batch", "queue": "orders", "succeeded": 50, "failed": 5}),
        (now - timedelta(seconds=20), {"event": "batch", "queue": "orders", "succeeded": 9, "failed": 1}),
        (now - timedelta(seconds=10), {"event": "batch", "queue": "orders", "succeeded": 10, "failed": 0}),
        (now - timedelta(seconds=10), {"event": "loop_end", "queue": "orders", "succeeded": 99, "failed": 9}),
    ]
    log.write_text("".join(f"{at.strftime('%Y-%m-%dT%H:%M:%S.000Z')} {json.dumps(line)}\n" for at, line in lines))
    assert counts_from_file(log) == {"orders": {"handled_a_minute": 19, "failed_a_minute": 1}}


def test_the_demo_view_is_live_on_a_terminal_and_a_line_a_second_piped() -> None:
    from sandbox.demo.view import DemoView

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    queue = {"visible": 40, "in_flight": 10, "dlq": 1, "loops": 2, "retiring": 1, "alarms": ["ALARM", "OK"]}
    sample = {"t": 2.0, "processed": 30, "vendor_calls": 12, "queues": {"emails": queue}}
    screen = Terminal()
    view = DemoView(screen, live=True)
    view.show(sample, sent=80, messages=100, revived=0)
    view.close()
    assert "\x1b[" in screen.getvalue() and "emails" in screen.getvalue() and "2 +1 retiring" in screen.getvalue()
    piped = io.StringIO()
    DemoView(piped, live=False).show(sample, sent=80, messages=100, revived=0)
    (line,) = piped.getvalue().splitlines()
    assert "sent 80/100" in line and "emails depth 50 (visible 40, in flight 10)" in line and "\x1b[" not in line


def test_status_reads_handled_a_minute_and_age_from_cloudwatch(aws: None) -> None:
    from ops.status_view import recent_metrics
    from poller.config import load_config

    config = load_config(CONFIG)
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    dims = [{"Name": "deployment", "Value": "p"}, {"Name": "queue", "Value": "orders"}]
    cloudwatch.put_metric_data(
        Namespace="SqsLoops",
        MetricData=[
            {"MetricName": "MessagesHandled", "Dimensions": dims, "Timestamp": minute, "Value": 70, "Unit": "Count"},
            {"MetricName": "MessagesHandled", "Dimensions": dims, "Timestamp": minute, "Value": 50, "Unit": "Count"},
        ],
    )
    age = {"Name": "QueueName", "Value": "orders-prod"}
    cloudwatch.put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {"MetricName": "ApproximateAgeOfOldestMessage", "Dimensions": [age], "Timestamp": minute, "Value": 42}
        ],
    )
    found = recent_metrics(cloudwatch, "p", config)
    assert found["orders"] == {"age_s": 42.0, "handled_a_minute": 120.0, "failed_a_minute": None}
    assert found["billing"] == {"age_s": None, "handled_a_minute": None, "failed_a_minute": None}
