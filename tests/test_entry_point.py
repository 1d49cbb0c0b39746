"""``poller.handler.handler`` as Lambda calls it: environment, config file, real clients on moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import sample_handlers
from conftest import FUNCTION_ARN, REGION, FakeContext, capture_invokes, create_function, log_events, make_queue, send

from poller import handler as entry
from poller.lease.recursion import LambdaInvoker
from poller.lease.tokens import TokenStore, bind_token_table


@pytest.fixture
def deployed(sqs: Any, tokens: TokenStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = make_queue(sqs, "orders-prod")
    config = tmp_path / "queues.yml"
    config.write_text(
        "queues:\n  orders:\n    queue: orders-prod\n    handler: sample_handlers.dispatch\n"
        "    wait_time_s: 1\n    handler_timeout_s: 1\n"
    )
    monkeypatch.setenv("SQS_LOOPS_CONFIG", str(config))
    monkeypatch.setenv("LOOPS_TABLE", tokens.model.Meta.table_name)
    monkeypatch.setenv("POLLER_FUNCTION", "sqs-loops-test-poller")
    entry._config.cache_clear()
    entry._services.cache_clear()
    yield url
    entry._config.cache_clear()
    entry._services.cache_clear()


def test_a_loop_step_runs_end_to_end_with_real_clients(deployed: str, tokens: TokenStore) -> None:
    create_function("sqs-loops-test-poller")
    tokens.create(deployed, "slot-1", loop_id="L1", now_ms=0)
    send(boto3.client("sqs", region_name=REGION), deployed, ["a", "b"])
    context = FakeContext(6, arn="arn:aws:lambda:us-east-1:123456789012:function:sqs-loops-test-poller")
    invokes = capture_invokes(entry._services().invoker.client)  # type: ignore[attr-defined]

    result = entry.handler({"queue_url": deployed, "token": "slot-1", "loop_id": "L1", "generation": 0}, context)

    assert (result["reason"], result["recursed"], result["succeeded"]) == ("time_up", True, 2)
    assert sorted(sample_handlers.bodies()) == ["a", "b"]
    (invoke,) = invokes
    assert invoke["headers"]["X-Amz-Invocation-Type"] == "Event"
    assert json.loads(invoke["body"]) == {"queue_url": deployed, "token": "slot-1", "loop_id": "L1", "generation": 1}


@pytest.mark.parametrize(
    ("event", "named"),
    [
        ("not a dict", "a loop event is a JSON object"),
        ({"queue_url": "u", "token": "t", "loop_id": "l"}, "generation: expected an integer >= 0, got None"),
        ({"queue_url": "", "token": "t", "loop_id": "l", "generation": 0}, "queue_url: expected a non-empty string"),
        ({"queue_url": "u", "token": 5, "loop_id": "l", "generation": True}, "token: expected a non-empty string"),
    ],
)
def test_bad_events_are_rejected_with_the_field_named(deployed: str, loop_logs: Any, event: Any, named: str) -> None:
    result = entry.handler(event, FakeContext(5))
    assert result == {"reason": "bad_event", "recursed": False}
    (line,) = log_events(loop_logs, "loop_rejected")
    assert named in line["error"] and line["level"] == "error"


def test_unknown_queue_is_rejected(deployed: str, loop_logs: Any) -> None:
    event = {
        "queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/other",
        "token": "t",
        "loop_id": "l",
        "generation": 0,
    }
    assert entry.handler(event, FakeContext(5))["reason"] == "unknown_queue"
    assert "matches no queue" in log_events(loop_logs, "loop_rejected")[0]["error"]


def test_missing_table_variable_is_named(deployed: str, monkeypatch: pytest.MonkeyPatch, loop_logs: Any) -> None:
    monkeypatch.delenv("LOOPS_TABLE")
    event = {"queue_url": deployed, "token": "t", "loop_id": "l", "generation": 0}
    assert entry.handler(event, FakeContext(5))["reason"] == "config_error"
    assert "LOOPS_TABLE is not set" in log_events(loop_logs, "loop_rejected")[0]["error"]


def test_lambda_invoker_sends_an_async_invoke(aws: None) -> None:
    create_function("target")
    client = boto3.client("lambda", region_name=REGION)
    invokes = capture_invokes(client)
    LambdaInvoker(client).invoke_async(FUNCTION_ARN.replace("sqs-loops-test-poller:live", "target"), {"a": 1})
    assert json.loads(invokes[0]["body"]) == {"a": 1}


def test_the_entry_point_s_clients_share_one_botocore_session(deployed: str, tokens: TokenStore) -> None:
    # A second session would load and parse botocore's data files again on every cold start (~50 ms).
    bind_token_table.cache_clear()  # as in a cold start: the token model not yet bound (the fixture bound it)
    services = entry._services()
    token_client = services.tokens.model._get_connection().connection.client
    sqs_client = services.sqs_client
    assert token_client._loader is sqs_client._loader  # the loader, with its cache, is the session's
    assert services.invoker.client._loader is sqs_client._loader  # type: ignore[attr-defined]


def test_the_shared_downstreams_client_is_made_on_its_first_call_only(deployed: str) -> None:
    # A queue without a rate limit never calls the downstreams' state rows: its cold start makes no client.
    shared = entry._services().shared
    assert shared.client._client is None  # type: ignore[attr-defined]
    shared.read("vendor")  # no row yet: no lanes, and one client made
    client = shared.client._client  # type: ignore[attr-defined]
    assert client is not None and shared.read("vendor") == [] and shared.client._client is client  # type: ignore[attr-defined]
