"""Shared fixtures: moto in-process, a token table, queues, fake Lambda contexts and clocks."""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import logging
import random
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import sample_handlers
from moto import mock_aws

from poller.clock import SYSTEM_CLOCK, Clock
from poller.config import Config, parse_config
from poller.lease.step import LoopStep
from poller.lease.tokens import TokenStore, bind_token_table
from poller.loop.run import Loop, Outcome
from poller.loop.services import LoopServices
from sandbox.clock import FakeClock as FakeClock  # tests import it from here

REGION = "us-east-1"
ACCOUNT = "123456789012"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:sqs-loops-test-poller:live"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "SQS_LOOPS_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws(config={"lambda": {"use_docker": False}}):
        yield


@pytest.fixture
def clock() -> FakeClock:
    """An injected clock the test moves by hand (the control plane's, a lease's)."""
    return FakeClock()


@pytest.fixture
def sqs(aws: None) -> Any:
    return boto3.client("sqs", region_name=REGION)


@pytest.fixture
def tokens(aws: None) -> TokenStore:
    model = bind_token_table("sqs-loops-test-tokens", region=REGION)
    model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
    return TokenStore(model)


@pytest.fixture(autouse=True)
def handler_behaviour() -> Iterator[None]:
    yield
    sample_handlers.reset()


@pytest.fixture(autouse=True)
def loop_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="sqs_loops")
    return caplog


def log_events(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "sqs_loops"]
    return [line for line in lines if line["event"] == event]


class FakeContext:
    """A Lambda context whose remaining time counts down on ``clock``."""

    def __init__(self, budget_s: float, clock: Clock = SYSTEM_CLOCK, arn: str = FUNCTION_ARN):
        self.clock = clock
        self.end = clock.monotonic() + budget_s
        self.invoked_function_arn = arn
        self.aws_request_id = "test-request"
        self.function_name = arn.split(":")[6]
        self.memory_limit_in_mb = 256

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.end - self.clock.monotonic()) * 1000))


@dataclass
class RecordingInvoker:
    """Stands in for Lambda's async Invoke: records what the loop asks to start."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail_with: Exception | None = None

    def invoke_async(self, function: str, payload: dict[str, Any]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.calls.append((function, payload))


def make_queue(sqs: Any, name: str, *, dlq_after: int | None = None, visibility_s: int = 30) -> str:
    attributes = {"VisibilityTimeout": str(visibility_s)}
    if dlq_after is not None:
        dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": dlq_after})
    url: str = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url


def send(sqs: Any, url: str, bodies: list[str]) -> None:
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 10])]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def count(sqs: Any, url: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def config_for(queue: str, *, poller: str = "", **settings: object) -> Config:
    """A one-queue config (key ``work``) with short timings for tests, overridable per key."""
    values = {
        "handler": "sample_handlers.dispatch",
        "wait_time_s": 1,
        "handler_timeout_s": 1,
        "visibility_timeout_s": 30,
        **settings,
    }
    lines = [f"    {k}: {json.dumps(v)}" for k, v in values.items()]
    text = f"{poller}\nqueues:\n  work:\n    queue: {queue}\n" + "\n".join(lines) + "\n"
    return parse_config(text, source="test.yml")


@dataclass
class LoopRig:
    """One queue, its token row and everything to run loop steps against them."""

    sqs: Any
    tokens: TokenStore
    url: str
    config: Config
    invoker: RecordingInvoker
    clock: Clock = SYSTEM_CLOCK
    token: str = "slot-1"
    loop_id: str = "loop-a"

    def create_token(self) -> LoopStep:
        self.tokens.create(self.url, self.token, loop_id=self.loop_id, now_ms=0)
        return LoopStep(self.url, self.token, self.loop_id, 0)

    def services(self, sqs_client: Any = None, tokens: TokenStore | None = None) -> LoopServices:
        return LoopServices(
            sqs_client=sqs_client or self.sqs,
            tokens=tokens or self.tokens,
            invoker=self.invoker,
            region=REGION,
            clock=self.clock,
            rand=random.Random(7),
        )

    def run(self, step: LoopStep, budget_s: float, **services: Any) -> Outcome:
        queue = self.config.queue("work")
        context = FakeContext(budget_s, self.clock)
        loop = Loop(
            step,
            queue=queue,
            settings=self.config.poller,
            services=self.services(**services),
            context=context,
            function=FUNCTION_ARN,
        )
        return loop.run()


@pytest.fixture
def rig_factory(sqs: Any, tokens: TokenStore) -> Any:
    def build(
        *, dlq_after: int | None = None, poller: str = "", clock: Clock = SYSTEM_CLOCK, **settings: object
    ) -> LoopRig:
        url = make_queue(sqs, "work-queue", dlq_after=dlq_after)
        return LoopRig(sqs, tokens, url, config_for(url, poller=poller, **settings), RecordingInvoker(), clock)

    return build


def create_function(name: str) -> None:
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("poller.py", "")
    boto3.client("lambda", region_name=REGION).create_function(
        FunctionName=name, Runtime="python3.12", Role=role, Handler="poller.handler", Code={"ZipFile": code.getvalue()}
    )


def capture_invokes(client: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    client.meta.events.register("before-call.lambda.Invoke", lambda params, **_: sent.append(params))
    return sent


@contextmanager
def one_serverless_at_a_time() -> Iterator[None]:
    """osls stages every package and deploy in the repository's own .serverless/ and deletes it afterwards, so
    two serverless commands at once (tests/test_deploy.py and tests/test_deployed.py on two pytest-xdist
    workers) break each other: they take turns on a lock file named after this checkout."""
    root = str(Path(__file__).resolve().parents[1])
    lock = Path(tempfile.gettempdir()) / f"sqs-loops-serverless-{hashlib.sha1(root.encode()).hexdigest()[:12]}.lock"
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
