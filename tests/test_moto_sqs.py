"""The sandbox's correction of moto's ReceiveMessage race (sandbox/moto_sqs.py), on moto in-process."""

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
def atomic_receive(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(SQSBackend, "receive_message", SQSBackend.receive_message)  # restored afterwards
    moto_sqs.install()
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
