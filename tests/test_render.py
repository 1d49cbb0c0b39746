"""The rendering of per-queue resources from the config (deploy/render.py), without the Framework."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.render import logical_id, main, render
from poller.config import parse_config
from poller.exceptions import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_logical_ids_are_alphanumeric() -> None:
    assert logical_id("orders-eu_2") == "OrdersEu2"


def test_queue_keys_that_would_clash_are_refused() -> None:
    config = parse_config(
        "queues:\n  a-b: {queue: q1, handler: m.h}\n  a_b: {queue: q2, handler: m.h}\n", source="x.yml"
    )
    with pytest.raises(ConfigError, match=r"queues\.a_b: its resource names would clash with those of queue 'a-b'"):
        render(config, prefix="p", root=ROOT)


def test_a_config_outside_the_project_cannot_be_shipped(tmp_path: Path) -> None:
    path = tmp_path / "q.yml"
    path.write_text("queues:\n  a: {queue: q, handler: m.h}\n")
    with pytest.raises(ConfigError, match="must lie inside the project"):
        render(parse_config(path.read_text(), source=str(path)), prefix="p", root=ROOT)


def test_fifo_queues_get_a_fifo_dlq() -> None:
    config = parse_config("queues:\n  a: {queue: jobs.fifo, handler: m.h, create: true}\n", source=str(ROOT / "x.yml"))
    resources = render(config, prefix="p", root=ROOT)["resources"]
    assert resources["ADeadLetterQueue"]["Properties"] == {
        "QueueName": "jobs-dlq.fifo",
        "MessageRetentionPeriod": 1209600,
        "FifoQueue": True,
    }
    assert resources["AQueue"]["Properties"]["FifoQueue"] is True


def test_the_command_prints_json_or_the_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["--prefix", "svc-dev", "--config", str(ROOT / "tests/fixtures/deploy-queues.yml"), "--root", str(ROOT)])
        == 0
    )
    rendered = json.loads(capsys.readouterr().out)
    assert rendered["config_path"] == "tests/fixtures/deploy-queues.yml" and rendered["poller_timeout_s"] == 600
    assert main(["--prefix", "svc-dev", "--config", str(ROOT / "tests/fixtures/bad-queues.yml")]) == 2
    assert "queues.orders.max_loops: expected an integer >= 1, got 'ten'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "queues:\n  a: {queue: https://sqs.us-east-1.amazonaws.com/123456789012/q, handler: m.h, create: true}\n",
            r"a\.create: the stack creates queues by name",
        ),
        ("queues:\n  a: {queue: q, handler: m.h, create: 'yes'}\n", r"a\.create: expected true or false"),
        (
            "queues:\n  a: {queue: q, handler: m.h, create: true, dlq: q-dead}\n",
            r"a\.dlq: a queue the stack creates gets its DLQ",
        ),
        ("queues:\n  a: {queue: q, handler: m.h, dlq: 'no good'}\n", r"a\.dlq: expected an SQS queue name or URL"),
        (
            "queues:\n  a: {queue: q, handler: m.h, max_receive_count: 0}\n",
            r"a\.max_receive_count: expected an integer from 1 to 1000",
        ),
    ],
)
def test_queue_resource_keys_are_validated(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text)


def test_the_runs_topic_and_the_right_to_publish_to_it() -> None:
    config = parse_config("queues:\n  jobs: {queue: jobs, handler: app.orders.handle}\n", source="t.yml")
    rendered = render(config, prefix="svc-dev", root=Path("."))
    assert rendered["resources"]["RunsTopic"]["Properties"] == {"TopicName": "svc-dev-runs"}
    for role in ("PollerRole", "RestartRole"):  # a loop publishes a run's notice; restart republishes a lost one
        statements = rendered["resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        publish = [s for s in statements if "sns:Publish" in s["Action"]]
        assert publish == [{"Effect": "Allow", "Action": ["sns:Publish"], "Resource": [{"Ref": "RunsTopic"}]}]
