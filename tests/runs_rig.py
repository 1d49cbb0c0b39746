"""What the runs tests share: a run book on the test token table, a topic with an SQS subscriber that
collects the notices, loops whose services count runs, and clients that fail the way AWS does."""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass, field
from typing import Any

import boto3
from conftest import FUNCTION_ARN, REGION, FakeContext, RecordingInvoker, config_for

from poller.config import Config
from poller.lease.step import LoopStep
from poller.lease.tokens import TokenStore
from poller.loop.run import Loop, Outcome
from poller.loop.services import LoopServices
from poller.runs import RunBook, sns_publisher

TABLE = "sqs-loops-test-tokens"


@dataclass
class Notices:
    """The runs topic, with an SQS queue subscribed: what anyone listening would get."""

    sqs: Any
    topic_arn: str
    url: str

    @classmethod
    def create(cls, sqs: Any) -> Notices:
        sns = boto3.client("sns", region_name=REGION)
        topic = sns.create_topic(Name="sqs-loops-test-runs")["TopicArn"]
        url = sqs.create_queue(QueueName="run-notices")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
        return cls(sqs, topic, url)

    def received(self) -> list[dict[str, Any]]:
        out = []
        while batch := self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", []):
            out += [json.loads(m["Body"]) for m in batch]
            for m in batch:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
        return out


class SerialDynamoDB:
    """The moto client with one lock around each call. DynamoDB applies each conditional write to an item
    atomically; moto's in-process backend does not lock, so without this two threads could interleave
    inside one write, which AWS never does. Nothing else changes: conditions are still moto's."""

    def __init__(self, real: Any):
        self.real = real
        self.lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.real, name)

        def locked(**params: Any) -> Any:
            with self.lock:
                return call(**params)

        return locked


@dataclass
class LostAnswers:
    """The moto client, but the first ``times`` UpdateItem calls whose update expression has ``match`` land
    and then answer with a transient error, as when the answer is lost on the way back: the caller retries a
    write that already happened."""

    real: Any
    match: str
    times: int = 1
    lost: int = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def update_item(self, **params: Any) -> Any:
        answer = self.real.update_item(**params)
        if self.lost < self.times and self.match in params.get("UpdateExpression", ""):
            self.lost += 1
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "lost"}}, "UpdateItem")
        return answer


def book(notices: Notices | None, dynamodb: Any = None) -> RunBook:
    client = dynamodb or boto3.client("dynamodb", region_name=REGION)
    sns = boto3.client("sns", region_name=REGION)
    return RunBook.of(client, TABLE, publish=sns_publisher(sns, notices.topic_arn) if notices else None)


@dataclass
class CrashingDeletes:
    """The moto SQS client, but DeleteMessageBatch fails (not transiently): the loop dies between the handler
    and the delete, as a crashed invocation would. ``received`` keeps the receipt handles, so a test can make
    the messages visible at once instead of waiting out their visibility timeout."""

    real: Any
    received: list[dict[str, Any]] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def receive_message(self, **params: Any) -> Any:
        answer = self.real.receive_message(**params)
        self.received += answer.get("Messages", [])
        return answer

    def delete_message_batch(self, **params: Any) -> Any:
        raise RuntimeError("the invocation died here")

    def release(self, url: str) -> None:
        for message in self.received:
            self.real.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )


def run_loop(
    sqs: Any,
    tokens: TokenStore,
    url: str,
    runs: RunBook,
    *,
    config: Config | None = None,
    token: str = "slot-1",
    loop_id: str = "loop-a",
    budget_s: float = 6,
    sqs_client: Any = None,
) -> Outcome:
    """One loop step on ``url`` (a fresh token row ``token``), counting runs in ``runs``."""
    config = config or config_for(url)
    if tokens.get(url, token) is None:
        tokens.create(url, token, loop_id=loop_id, now_ms=0)
    row = tokens.get(url, token)
    assert row is not None
    services = LoopServices(
        sqs_client=sqs_client or sqs,
        tokens=tokens,
        invoker=RecordingInvoker(),
        region=REGION,
        clock=runs.clock,
        rand=random.Random(3),
        runs=runs,
    )
    step = LoopStep(url, token, row.loop_id, row.generation)
    queue = config.queue("work")
    loop = Loop(
        step,
        queue=queue,
        settings=config.poller,
        services=services,
        context=FakeContext(budget_s),
        function=FUNCTION_ARN,
    )
    return loop.run()
