"""Endpoints that accept a connection and never answer (or answer a byte at a time), on loopback: a loop step
still returns before its deadline, and invokes its next step when it can. moto answers every call at once,
so only a real socket shows what the clients' timeouts and the loop's time checks do (docs/reliability.md)."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import sample_handlers
from conftest import FUNCTION_ARN, REGION, FakeContext, LoopRig, RecordingInvoker, log_events, send

from poller.aws.clients import async_lambda_client, control_client, sqs_client, sqs_receive_client, worst_call_s
from poller.config import HttpTarget
from poller.lease.recursion import LambdaInvoker
from poller.lease.step import LoopStep
from poller.lease.tokens import TokenStore, bind_token_table
from poller.loop import Loop, LoopServices, Outcome
from poller.targets.http import HttpForward
from sandbox import loopback


class Silent:
    """A TCP server on loopback that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:  # closed at the end of the test
                return
            self.held.append(connection)

    def close(self) -> None:
        self.server.close()
        for connection in self.held:
            connection.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    yield server
    server.close()


class DeadlineInvoker(RecordingInvoker):
    """Records each invoke with the time its invocation had left then (seconds)."""

    def __init__(self, context: FakeContext):
        super().__init__()
        self.context = context
        self.remaining_s: list[float] = []

    def invoke_async(self, function: str, payload: dict[str, Any]) -> None:
        self.remaining_s.append(self.context.get_remaining_time_in_millis() / 1000)
        super().invoke_async(function, payload)


def run_step(rig: LoopRig, step: LoopStep, context: FakeContext, **services: Any) -> Outcome:
    defaults: dict[str, Any] = {
        "sqs_client": rig.sqs,
        "tokens": rig.tokens,
        "invoker": rig.invoker,
        "region": REGION,
        "clock": rig.clock,
        "rand": __import__("random").Random(7),
    }
    loop = Loop(
        step,
        queue=rig.config.queue("work"),
        settings=rig.config.poller,
        services=LoopServices(**{**defaults, **services}),
        context=context,
        function=FUNCTION_ARN,
    )
    return loop.run()


def test_sqs_that_never_answers_hands_over_before_the_deadline(
    rig_factory: Any, silent: Silent, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig: LoopRig = rig_factory()
    step = rig.create_token()  # the token table stays on moto: only SQS hangs
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", silent.url)
    context = FakeContext(10)
    invoker = DeadlineInvoker(context)

    outcome = run_step(
        rig,
        step,
        context,
        sqs_client=sqs_client(REGION),
        sqs_receive_client=partial(sqs_receive_client, REGION),
        invoker=invoker,
    )

    assert (outcome.reason, outcome.recursed) == ("transient_errors", True)
    assert invoker.calls[-1][1]["generation"] == 1 and invoker.remaining_s[-1] > 0
    assert context.get_remaining_time_in_millis() > 0  # returned before its deadline
    assert silent.held  # the receives did reach the endpoint


def test_dynamodb_that_never_answers_hands_the_step_over_before_the_deadline(rig_factory: Any, silent: Silent) -> None:
    rig: LoopRig = rig_factory()
    step = LoopStep(rig.url, "slot-1", "loop-a", 0)
    hung = TokenStore(bind_token_table("hung-tokens", region=REGION, host=silent.url, in_loop=True))
    context = FakeContext(8)
    invoker = DeadlineInvoker(context)

    outcome = run_step(rig, step, context, tokens=hung, invoker=invoker)

    assert (outcome.reason, outcome.recursed) == ("transient_errors", True)
    handed = LoopStep.parse(invoker.calls[-1][1])
    assert handed.generation == 0 and handed.claim_ids  # the same step, for a fresh invocation
    assert invoker.remaining_s[-1] > 0 and context.get_remaining_time_in_millis() > 0


def test_lambda_that_never_answers_ends_the_step_before_the_deadline(
    rig_factory: Any, silent: Silent, monkeypatch: pytest.MonkeyPatch, loop_logs: Any
) -> None:
    rig: LoopRig = rig_factory()
    send(rig.sqs, rig.url, ["a", "b"])
    step = rig.create_token()
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", silent.url)
    context = FakeContext(8)  # room for a slow claim on a loaded machine: the batch must run

    outcome = run_step(rig, step, context, invoker=LambdaInvoker(async_lambda_client(REGION)))

    assert (outcome.reason, outcome.recursed, outcome.succeeded) == ("recursion_failed", False, 2)
    assert context.get_remaining_time_in_millis() > 0  # the invoke's retries stopped while it had time
    assert log_events(loop_logs, "recursion_failed")


class HangingDeletes:
    """The real (moto) SQS client, but DeleteMessageBatch hangs until the test lets it go."""

    def __init__(self, real: Any):
        self.real = real
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def delete_message_batch(self, **kwargs: Any) -> Any:
        self.release.wait(30)
        return self.real.delete_message_batch(**kwargs)


def test_a_delete_that_hangs_does_not_keep_the_step_from_its_next_one(rig_factory: Any, loop_logs: Any) -> None:
    """The delete runs in the background; the loop waits for it only while the time allows, then hands
    over, and the next step is invoked before the deadline (the undeleted messages come back later)."""
    rig: LoopRig = rig_factory()
    send(rig.sqs, rig.url, ["a", "b"])
    step = rig.create_token()
    context = FakeContext(8)
    invoker = DeadlineInvoker(context)
    hanging = HangingDeletes(rig.sqs)
    try:
        outcome = run_step(rig, step, context, sqs_client=hanging, invoker=invoker)
    finally:
        hanging.release.set()

    assert (outcome.reason, outcome.recursed) == ("transient_errors", True)
    assert invoker.calls[-1][1]["generation"] == 1 and invoker.remaining_s[-1] > 0
    assert [line["what"] for line in log_events(loop_logs, "handing_over")] == ["delete"]
    assert context.get_remaining_time_in_millis() > 0
    assert sorted(r["body"] for r in sample_handlers.seen) == ["a", "b"]  # handled once; they come back later


class Trickle:
    """An HTTP endpoint that answers 200 and then its 40-byte body one byte every 0.25 s (10 s in all)."""

    def __init__(self) -> None:
        self.server, self.url = loopback.serve(self._answer, name="trickle")

    def _answer(self, request: BaseHTTPRequestHandler) -> None:
        request.rfile.read(int(request.headers.get("Content-Length") or 0))
        request.send_response(200)
        request.send_header("Content-Length", "40")
        request.end_headers()
        try:
            for _ in range(40):
                request.wfile.write(b"x")
                request.wfile.flush()
                time.sleep(0.25)
        except OSError:  # the client gave up, as it should
            return


def test_an_http_answer_that_trickles_is_cut_at_the_timeout() -> None:
    """requests' read timeout (0.5 s here) bounds each socket read; this answer never pauses that long, yet
    takes 10 s. The whole request is bounded: the record fails for a retry within about a second."""
    vendor = Trickle()
    try:
        forward = HttpForward(HttpTarget(vendor.url, timeout_s=0.5))
        record = {"messageId": "m1", "body": "{}"}
        started = time.monotonic()
        failures = forward.send({"Records": [record]}, None, {})
        took = time.monotonic() - started
    finally:
        loopback.stop(vendor.server)
    assert set(failures) == {"m1"} and not failures["m1"].permanent
    assert took < 5  # 1 s allowed (connect + read); 10 s if each read alone were bounded


def test_the_control_planes_clients_give_up_within_restarts_timeout() -> None:
    """botocore's defaults (60 s read, retried) outlast restart's 50 s: a hung CloudWatch or Lambda endpoint
    would kill restart in the middle of a revive. Every control-plane client fails a call well before that."""
    text = (Path(__file__).parent.parent / "serverless.yml").read_text()
    timeouts = {
        name: int(re.search(rf"\n  {name}:\n(?:    .*\n)*?    timeout: (\d+)", text)[1])  # type: ignore[index]
        for name in ("scaleUp", "scaleDown", "restart")
    }
    assert timeouts["restart"] == 50
    shortest = min(timeouts.values())
    client = control_client("cloudwatch", REGION)
    config = client.meta.config
    attempts = config.retries["total_max_attempts"]
    worst = worst_call_s(config.connect_timeout, config.read_timeout, attempts)
    assert worst < shortest / 2, f"one control-plane call may take {worst} s of a {shortest}-s function"
    table = bind_token_table("control-tokens", region=REGION).Meta
    assert (
        worst_call_s(table.connect_timeout_seconds, table.read_timeout_seconds, 1 + table.max_retry_attempts) == worst
    )
