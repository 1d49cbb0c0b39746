"""The sandbox's corrections of moto's ReceiveMessage and DeleteMessage races and of its per-message costs
(sandbox/moto_sqs.py), on moto in-process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.sqs.models import Message, SQSBackend

from sandbox import moto_sqs

REGION = "us-east-1"
MARK_DELAY_S = 0.2
"""Widens moto's window between "is it visible?" and "mark it received" so two receivers meet in it."""


@pytest.fixture
def slow_marking(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Message.mark_received

    def mark_received(self: Message, visibility_timeout: int | None = None) -> None:
        time.sleep(MARK_DELAY_S)
        original(self, visibility_timeout)

    monkeypatch.setattr(Message, "mark_received", mark_received)


@pytest.fixture
def atomic_receive(corrections: None) -> Iterator[None]:
    moto_sqs.install()  # every correction, taken out afterwards
    yield


def _receive_together(sqs: Any, url: str, receivers: int) -> list[list[str]]:
    """Each receiver's message ids, all receives started at once."""
    start = threading.Barrier(receivers)
    got: list[list[str]] = [[] for _ in range(receivers)]

    def receive(i: int) -> None:
        start.wait()
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=30)
        got[i] = [m["MessageId"] for m in answer.get("Messages", [])]

    threads = [threading.Thread(target=receive, args=(i,)) for i in range(receivers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return got


def test_concurrent_receives_never_share_a_message(aws: None, slow_marking: None, atomic_receive: None) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="race")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="once")

    got = _receive_together(sqs, url, receivers=2)

    assert sorted(len(ids) for ids in got) == [0, 1]  # moto alone hands the one message to both


def test_a_long_poll_still_waits_for_a_message(aws: None, atomic_receive: None) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="later")["QueueUrl"]
    threading.Timer(0.3, lambda: sqs.send_message(QueueUrl=url, MessageBody="late")).start()

    answer = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)

    assert [m["Body"] for m in answer["Messages"]] == ["late"]


@pytest.fixture
def corrections(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Both corrections installed by the test (moto_sqs.install()), taken out afterwards."""
    from moto.sqs.models import Queue

    for name in ("messages", "approximate_number_of_messages_not_visible", "approximate_number_of_messages_delayed"):
        monkeypatch.setattr(Queue, name, getattr(Queue, name))
    for name in ("receive_message", "is_message_valid_based_on_retention_period"):
        monkeypatch.setattr(SQSBackend, name, getattr(SQSBackend, name))
    monkeypatch.setattr(Queue, "delete_message", Queue.delete_message)
    yield


def _counts(sqs: Any, url: str) -> dict[str, str]:
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    answer: dict[str, str] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return answer


def test_the_counts_made_linear_answer_as_moto_does(aws: None, corrections: None) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="counts")["QueueUrl"]
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": f"m{n}"} for n in range(9)])
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=4, VisibilityTimeout=60)
    motos_own = _counts(sqs, url)

    moto_sqs.install()

    assert (
        _counts(sqs, url)
        == motos_own
        == {
            "ApproximateNumberOfMessages": "5",
            "ApproximateNumberOfMessagesNotVisible": "4",
            "ApproximateNumberOfMessagesDelayed": "1",
        }
    )


def test_a_message_past_its_retention_is_still_never_received(aws: None, corrections: None) -> None:
    moto_sqs.install()
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="old", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="stale")
    from moto.sqs.models import sqs_backends

    [backend] = [
        b for account in sqs_backends.values() for r, b in account.items() if r == REGION and "old" in b.queues
    ]
    backend.queues["old"]._messages[0].sent_timestamp -= 61_000  # sent 61 s ago: past the queue's 60 s

    assert "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    backend.queues["old"]._messages[0].sent_timestamp += 61_000  # as sent: received
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]] == ["stale"]


@pytest.fixture
def slow_matching(monkeypatch: pytest.MonkeyPatch) -> None:
    """Widens the window in which moto's delete builds the queue's list again, so two deletes overlap."""
    original = Message.had_receipt_handle

    def had_receipt_handle(self: Message, receipt_handle: str) -> bool:
        time.sleep(0.02)
        return bool(original(self, receipt_handle))

    monkeypatch.setattr(Message, "had_receipt_handle", had_receipt_handle)


@pytest.mark.parametrize("corrected", [True, False])
def test_two_deletes_and_a_send_at_once_keep_every_change(
    aws: None, slow_matching: None, corrections: None, corrected: bool
) -> None:
    if corrected:
        moto_sqs.install()
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="deletes")["QueueUrl"]
    for n in range(4):
        sqs.send_message(QueueUrl=url, MessageBody=f"handled-{n}")
    handled = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)["Messages"]
    assert len(handled) == 4
    start = threading.Barrier(3)

    def delete(batch: list[dict[str, Any]]) -> None:
        start.wait()
        entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(batch)]
        assert not sqs.delete_message_batch(QueueUrl=url, Entries=entries).get("Failed")

    def send() -> None:
        start.wait()
        time.sleep(0.05)  # while the deletes build their lists
        sqs.send_message(QueueUrl=url, MessageBody="sent meanwhile")

    threads = [
        threading.Thread(target=delete, args=(handled[:2],)),
        threading.Thread(target=delete, args=(handled[2:],)),
        threading.Thread(target=send),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    counts = _counts(sqs, url)
    left = (int(counts["ApproximateNumberOfMessages"]), int(counts["ApproximateNumberOfMessagesNotVisible"]))
    if corrected:
        assert left == (1, 0)  # the one sent meanwhile, visible; the four handled, deleted
    else:
        assert left != (1, 0)  # moto alone: a batch deleted comes back in flight, or the send is lost
