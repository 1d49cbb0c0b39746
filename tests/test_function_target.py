"""``function:`` targets against what Lambda enforces: a synchronous payload of at most 6 MB (the local
runtime answers 413 above it, as Lambda does), and a pooled connection the endpoint closed while idle."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import sample_handlers
from botocore.config import Config as BotoConfig
from botocore.exceptions import ConnectionClosedError
from conftest import REGION, log_events

from poller.aws.limits import LAMBDA_SYNC_PAYLOAD_BYTES
from poller.sqs.records import esm_record
from poller.targets.function import STALE_CONNECTION_S, FunctionTarget, sync_lambda_client
from poller.targets.payload import fitting_events, payload
from sandbox.lambda_runtime import LocalFunction, LocalLambda

MIB = 1024 * 1024
NO_RETRIES = BotoConfig(retries={"mode": "standard", "total_max_attempts": 1})  # as sync_lambda_client
ARN = f"arn:aws:sqs:{REGION}:123456789012:jobs"


def _event(bodies: list[str], *, group: str | None = None) -> dict[str, Any]:
    attributes = {"MessageGroupId": group} if group else {}
    messages = [
        {"MessageId": f"m{n}", "ReceiptHandle": f"r{n}", "Body": body, "Attributes": attributes}
        for n, body in enumerate(bodies)
    ]
    return {"Records": [esm_record(m, arn=ARN, region=REGION) for m in messages]}


@pytest.fixture
def worker() -> Iterator[tuple[LocalLambda, Any]]:
    runtime = LocalLambda(functions={"worker": LocalFunction("worker", "sample_handlers.dispatch", 30)})
    url = runtime.start()
    client = boto3.client("lambda", region_name=REGION, endpoint_url=url, config=NO_RETRIES)
    yield runtime, client
    runtime.stop()


def test_ten_messages_of_1_mib_reach_the_function_in_calls_under_6_mb(worker: tuple[LocalLambda, Any]) -> None:
    runtime, client = worker
    event = _event([chr(ord("a") + n) * (MIB - 100) for n in range(10)])
    assert len(payload(event)) > LAMBDA_SYNC_PAYLOAD_BYTES  # in one call Lambda refuses it (413)
    sample_handlers.use(
        lambda event, context: {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]} for r in event["Records"] if r["messageId"] == "m7"
            ]
        }
    )

    failures = FunctionTarget("worker", timeout_s=30, region=REGION, client=client).send(event, None, {})

    assert set(failures) == {"m7"}  # the function's own answer, read per call
    assert [r["messageId"] for r in sample_handlers.seen] == [f"m{n}" for n in range(10)]  # each once, in order
    assert runtime.invocations == 2
    assert all(len(payload(part)) <= LAMBDA_SYNC_PAYLOAD_BYTES for part in fitting_events(event))


def test_one_call_over_the_limit_is_refused_by_the_stand_in_as_by_lambda(worker: tuple[LocalLambda, Any]) -> None:
    _, client = worker
    with pytest.raises(client.exceptions.RequestTooLargeException):
        client.invoke(FunctionName="worker", Payload=b'"' + b"x" * LAMBDA_SYNC_PAYLOAD_BYTES + b'"')


def test_on_a_fifo_queue_a_failed_call_fails_the_calls_after_it(worker: tuple[LocalLambda, Any]) -> None:
    _, client = worker
    event = _event([str(n) * (MIB - 100) for n in range(8)], group="g1")

    def fail_the_first_call(event: dict[str, Any], context: Any) -> Any:
        return {"batchItemFailures": [{"itemIdentifier": "m2"}]} if event["Records"][0]["messageId"] == "m0" else None

    sample_handlers.use(fail_the_first_call)
    failures = FunctionTarget("worker", timeout_s=30, region=REGION, client=client).send(event, None, {})

    first_call = len(fitting_events(event)[0]["Records"])
    assert [r["messageId"] for r in sample_handlers.seen] == [f"m{n}" for n in range(first_call)]
    assert set(failures) == {"m2"} | {f"m{n}" for n in range(first_call, 8)}  # nothing of the group ran later


class ClosingFirst:
    """An endpoint that closes the first connection it accepts once the request is in, without a word, as
    a load balancer closes an idle keep-alive connection the client still thinks open; then answers."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                while True:
                    data = conn.recv(65536)
                    if not data or b"\r\n\r\n" in data:
                        break
                self.requests += 1
                if self.requests == 1:
                    continue  # closed: RemoteDisconnected on the client's side
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")

    def close(self) -> None:
        self.server.close()


def test_a_call_that_meets_a_closed_pooled_connection_is_sent_again(loop_logs: Any) -> None:
    endpoint = ClosingFirst()
    client = boto3.client("lambda", region_name=REGION, endpoint_url=endpoint.url, config=NO_RETRIES)
    try:
        failures = FunctionTarget("worker", timeout_s=5, region=REGION, client=client).send(_event(["a"]), None, {})
    finally:
        endpoint.close()
    assert failures == {} and endpoint.requests == 2
    assert len(log_events(loop_logs, "forward_reconnect")) == 1


def test_a_connection_closed_after_the_function_may_have_run_fails_the_batch_instead() -> None:
    endpoint = ClosingFirst()
    client = boto3.client("lambda", region_name=REGION, endpoint_url=endpoint.url, config=NO_RETRIES)
    ticks = iter([0.0, STALE_CONNECTION_S + 1])  # the answer would have come after the function ran
    try:
        target = FunctionTarget("worker", timeout_s=5, region=REGION, client=client, monotonic=lambda: next(ticks))
        failures = target.send(_event(["a"]), None, {})
    finally:
        endpoint.close()
    assert set(failures) == {"m0"} and endpoint.requests == 1


def test_botocore_itself_makes_one_call_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A retried synchronous invoke would run the batch twice: only the stale-connection case above is sent
    again, by us, knowing when the connection failed."""
    endpoint = ClosingFirst()
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", endpoint.url)
    client = sync_lambda_client.__wrapped__(5, REGION)  # a client of its own, not the cached one
    try:
        with pytest.raises(ConnectionClosedError):
            client.invoke(FunctionName="worker", Payload=b"{}")
    finally:
        endpoint.close()
    assert endpoint.requests == 1
