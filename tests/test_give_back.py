"""Messages a loop gives back unhandled (poller/loop/give_back.py), on moto's SQS, which moves a message to
the DLQ at the receive after its maxReceiveCount-th as SQS does: one on its last receive is sent again as a
copy, so being given back never sends a good message to the DLQ; the others are only made visible."""

from __future__ import annotations

import json
import random
from typing import Any

from conftest import log_events, make_queue

from poller.clock import SYSTEM_CLOCK
from poller.loop.give_back import GiveBack
from poller.runs.tag import RUN_ATTRIBUTE, RunTag
from poller.sqs.client import QueueClient
from poller.sqs.records import Message
from poller.sqs.redrive import RedriveLimit, receive_count


class CountingClient:
    """The boto3 client, with the GetQueueAttributes calls counted (the redrive policy's reads)."""

    def __init__(self, client: Any):
        self.client = client
        self.attribute_reads = 0

    def get_queue_attributes(self, **params: Any) -> Any:
        self.attribute_reads += 1
        return self.client.get_queue_attributes(**params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def give_back_for(client: Any, url: str, *, fallback: int | None = 5, fifo: bool = False) -> GiveBack:
    sqs = QueueClient(client, url, SYSTEM_CLOCK, random.Random(1))
    return GiveBack(sqs, RedriveLimit(sqs, fallback=fallback, log_fields={}), fifo=fifo, log_fields={"queue": "work"})


def receive(sqs: Any, url: str, **extra: Any) -> list[Message]:
    answer = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=30,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["All"],
        **extra,
    )
    return list(answer.get("Messages", []))


def dlq_size(sqs: Any, url: str) -> int:
    dlq = sqs.get_queue_url(QueueName=url.rsplit("/", 1)[1] + "-dlq")["QueueUrl"]
    return int(
        sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"]["ApproximateNumberOfMessages"]
    )


def test_a_message_given_back_on_its_last_receive_comes_back_as_a_copy_not_in_the_dlq(sqs: Any, loop_logs: Any) -> None:
    url = make_queue(sqs, "work", dlq_after=2)
    tag = RunTag("crawl-1", "page-7").attribute()
    sqs.send_message(QueueUrl=url, MessageBody="page 7", MessageAttributes=tag)
    give_back = give_back_for(sqs, url)
    [first] = receive(sqs, url)
    give_back([first])  # receive 1 of 2: only made visible again
    [second] = receive(sqs, url)
    assert second["MessageId"] == first["MessageId"] and receive_count(second) == 2
    give_back([second])  # its last receive: SQS would move it to the DLQ at the next one
    [copy] = receive(sqs, url)
    assert copy["MessageId"] != first["MessageId"] and receive_count(copy) == 1
    assert copy["Body"] == "page 7"
    assert json.loads(copy["MessageAttributes"][RUN_ATTRIBUTE]["StringValue"]) == {"run": "crawl-1", "id": "page-7"}
    assert dlq_size(sqs, url) == 0
    [line] = log_events(loop_logs, "given_back_as_copies")
    assert line["message_ids"] == [first["MessageId"]] and line["unsent"] == [] and line["undeleted"] == []
    # The original was deleted: once the copy is handled, nothing is left, here or in the DLQ.
    sqs.delete_message(QueueUrl=url, ReceiptHandle=copy["ReceiptHandle"])
    assert receive(sqs, url, WaitTimeSeconds=0) == [] and dlq_size(sqs, url) == 0


def test_first_deliveries_are_given_back_without_reading_the_redrive_policy(sqs: Any) -> None:
    url = make_queue(sqs, "work", dlq_after=4)
    sqs.send_message(QueueUrl=url, MessageBody="a")
    counting = CountingClient(sqs)
    give_back = give_back_for(counting, url)
    [message] = receive(sqs, url)
    give_back([message])
    assert counting.attribute_reads == 0  # the end of every step gives back first deliveries: no extra call
    [again] = receive(sqs, url)
    give_back([again])  # received before: the policy is read, once per invocation
    [third] = receive(sqs, url)
    give_back([third])
    assert counting.attribute_reads == 1
    assert [m["MessageId"] for m in receive(sqs, url)] == [message["MessageId"]]  # receive 3 of 4: no copy


def test_a_queue_whose_first_receive_is_its_last_copies_at_once(sqs: Any) -> None:
    url = make_queue(sqs, "work", dlq_after=1)
    sqs.send_message(QueueUrl=url, MessageBody="only once")
    give_back = give_back_for(sqs, url, fallback=1)  # the config says max_receive_count: 1
    [message] = receive(sqs, url)
    give_back([message])
    [copy] = receive(sqs, url)
    assert copy["MessageId"] != message["MessageId"] and dlq_size(sqs, url) == 0


def test_a_fifo_message_is_only_made_visible_keeping_its_place_in_its_group(sqs: Any) -> None:
    url = sqs.create_queue(
        QueueName="work.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="first", MessageGroupId="g")
    sqs.send_message(QueueUrl=url, MessageBody="second", MessageGroupId="g")
    give_back = give_back_for(sqs, url, fallback=1, fifo=True)
    held = receive(sqs, url)
    give_back(held)
    assert [m["MessageId"] for m in receive(sqs, url)] == [m["MessageId"] for m in held]


def test_a_copy_that_cannot_be_sent_leaves_the_message_given_back_as_it_is(sqs: Any, loop_logs: Any) -> None:
    url = make_queue(sqs, "work", dlq_after=1)
    sqs.send_message(QueueUrl=url, MessageBody="x")

    class NoSend(CountingClient):
        def send_message_batch(self, **params: Any) -> Any:
            raise RuntimeError("AccessDenied: sqs:SendMessage")

    give_back = give_back_for(NoSend(sqs), url, fallback=1)
    [message] = receive(sqs, url)
    give_back([message])
    [line] = log_events(loop_logs, "give_back_copy_failed")
    assert "AccessDenied" in line["error"]
    assert receive(sqs, url) == [] and dlq_size(sqs, url) == 1  # visible at once: SQS moved it on, as before
