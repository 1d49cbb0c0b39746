"""The producer against moto: batches, byte budgets, timers, FIFO rules, and no message lost on failures."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import FakeClock, count, log_events, make_queue

from producer.exceptions import BadSend, MessageTooLarge
from producer.plan import Jitter, plan_spread
from producer.send import ENTRY_RETRY, SendIncomplete, send_messages


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every visible message of the queue (deleted as read)."""
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageSystemAttributeNames=["All"]
    ).get("Messages", []):
        messages += batch
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        )
    return messages


def delayed(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessagesDelayed"])


def error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "op")


@dataclass
class FaultyBatches:
    """The real (moto) client, but SendMessageBatch fails chosen entries the way SQS reports them: bodies
    in ``refuse`` always (SenderFault), bodies in ``flaky`` for their first ``flaky_times`` attempts (a
    service fault), and whole calls raise the errors queued in ``raise_on_call`` (by call number)."""

    real: Any
    refuse: set[str] = field(default_factory=set)
    flaky: set[str] = field(default_factory=set)
    flaky_times: int = 1
    raise_on_call: dict[int, ClientError] = field(default_factory=dict)
    deny_attributes: bool = False
    calls: list[list[dict[str, Any]]] = field(default_factory=list)
    tries: dict[str, int] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def get_queue_attributes(self, **params: Any) -> dict[str, Any]:
        if self.deny_attributes:
            raise error("AccessDenied", 403)
        return self.real.get_queue_attributes(**params)

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Entries)
        if len(self.calls) in self.raise_on_call:
            raise self.raise_on_call[len(self.calls)]
        failed, passed = [], []
        for entry in Entries:
            body = entry["MessageBody"]
            self.tries[body] = self.tries.get(body, 0) + 1
            if body in self.refuse:
                failed.append(
                    {"Id": entry["Id"], "SenderFault": True, "Code": "InvalidParameterValue", "Message": "no"}
                )
            elif body in self.flaky and self.tries[body] <= self.flaky_times:
                failed.append(
                    {"Id": entry["Id"], "SenderFault": False, "Code": "InternalError", "Message": "try again"}
                )
            else:
                passed.append(entry)
        result = self.real.send_message_batch(QueueUrl=QueueUrl, Entries=passed) if passed else {}
        return {"Successful": result.get("Successful", []), "Failed": failed + result.get("Failed", [])}


def test_many_messages_go_in_batches_of_ten_and_all_arrive(sqs: Any) -> None:
    url = make_queue(sqs, "jobs")
    bodies = [f"job-{i}" for i in range(25)]
    progress: list[tuple[int, int, int]] = []
    report = send_messages(sqs, url, bodies, clock=FakeClock(), on_progress=lambda *p: progress.append(p))
    assert (report.sent, report.failed, report.batches, report.ok) == (25, (), 3, True)
    assert progress == [(10, 0, 25), (20, 0, 25), (25, 0, 25)]
    assert sorted(m["Body"] for m in drain(sqs, url)) == sorted(bodies)


def test_a_batch_holds_no_more_bytes_than_the_queue_accepts(sqs: Any) -> None:
    url = make_queue(sqs, "jobs")
    bodies = [f"{i}" + "x" * 399 for i in range(5)]  # 400 bytes each: two fit in 1,000
    faulty = FaultyBatches(sqs)
    report = send_messages(faulty, url, bodies, max_message_bytes=1000, clock=FakeClock())
    assert [len(c) for c in faulty.calls] == [2, 2, 1]
    assert report.sent == 5
    assert len(drain(sqs, url)) == 5


def test_the_queue_maximum_message_size_is_read_and_a_larger_message_named_before_anything_is_sent(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="small", Attributes={"MaximumMessageSize": "1024"})["QueueUrl"]
    bodies = ["fine", "é" * 600, "fine too"]  # 1,200 bytes in UTF-8
    with pytest.raises(MessageTooLarge, match="message 1 is 1200 bytes; the queue accepts at most 1024") as caught:
        send_messages(sqs, url, bodies, clock=FakeClock())
    assert (caught.value.index, caught.value.limit_bytes) == (1, 1024)
    assert count(sqs, url) == (0, 0)


def test_a_producer_that_may_not_read_the_queue_keeps_to_the_default_256_kib(
    sqs: Any, loop_logs: pytest.LogCaptureFixture
) -> None:
    url = make_queue(sqs, "jobs")  # moto's queue takes 1 MiB, but the producer cannot know
    faulty = FaultyBatches(sqs, deny_attributes=True)
    with pytest.raises(MessageTooLarge, match="the queue accepts at most 262144"):
        send_messages(faulty, url, ["x" * 300_000], clock=FakeClock())
    assert [e["code"] for e in log_events(loop_logs, "max_message_size_unknown")] == ["AccessDenied"]
    assert send_messages(faulty, url, ["x" * 200_000, "y" * 200_000], clock=FakeClock()).batches == 2


@pytest.mark.parametrize(("body", "named"), [("", "non-empty string"), ("a\x00b", "U\\+0000 at position 1")])
def test_bodies_sqs_would_refuse_are_named_before_anything_is_sent(sqs: Any, body: str, named: str) -> None:
    url = make_queue(sqs, "jobs")
    with pytest.raises(BadSend, match=f"message 2: .*{named}"):
        send_messages(sqs, url, ["a", "b", body], clock=FakeClock())
    assert count(sqs, url) == (0, 0)


def test_a_plan_hides_each_message_until_its_slot(sqs: Any) -> None:
    url = make_queue(sqs, "jobs")
    plan = plan_spread(20, 10.0, 2)  # window 100 s: one message every 5 s
    faulty = FaultyBatches(sqs)
    report = send_messages(faulty, url, [f"job-{i}" for i in range(20)], timers=plan, clock=FakeClock())
    delays = [e["DelaySeconds"] for call in faulty.calls for e in call]
    assert delays == list(range(0, 100, 5))
    assert report.max_delay_s == 95
    assert [m["Body"] for m in drain(sqs, url)] == ["job-0"]  # the others wait for their timers
    assert delayed(sqs, url) == 19


def test_jitter_delays_each_message_within_its_range(sqs: Any) -> None:
    url = make_queue(sqs, "jobs")
    faulty = FaultyBatches(sqs)
    send_messages(faulty, url, [str(i) for i in range(30)], timers=Jitter(10, 100), rand=random.Random(1))
    delays = [e["DelaySeconds"] for call in faulty.calls for e in call]
    assert all(10 <= d <= 100 for d in delays) and len(set(delays)) > 10
    assert delayed(sqs, url) == 30


def test_a_plan_for_another_count_or_a_budget_beyond_sqs_is_refused(sqs: Any) -> None:
    url = make_queue(sqs, "jobs")
    with pytest.raises(BadSend, match="the plan is for 5 jobs, but there are 3 messages"):
        send_messages(sqs, url, ["a", "b", "c"], timers=plan_spread(5, 1.0, 1))
    with pytest.raises(BadSend, match="max_message_bytes: expected 1-1048576"):
        send_messages(sqs, url, ["a"], max_message_bytes=2_000_000)
    assert count(sqs, url) == (0, 0)


def test_failed_entries_are_retried_when_sqs_failed_and_named_when_it_refused(
    sqs: Any, loop_logs: pytest.LogCaptureFixture
) -> None:
    url = make_queue(sqs, "jobs")
    bodies = [f"job-{i}" for i in range(12)]
    faulty = FaultyBatches(sqs, refuse={"job-4"}, flaky={"job-2", "job-11"}, flaky_times=2)
    clock = FakeClock()
    report = send_messages(faulty, url, bodies, clock=clock, rand=random.Random(0))
    assert report.sent == 11
    assert [(f.index, f.code, f.sender_fault) for f in report.failed] == [(4, "InvalidParameterValue", True)]
    assert report.retried == 4  # job-2 and job-11, twice each
    assert faulty.tries["job-4"] == 1  # a refusal is not sent again
    assert clock.monotonic() > 0  # it backed off between attempts
    assert sorted(m["Body"] for m in drain(sqs, url)) == sorted(set(bodies) - {"job-4"})
    assert [e["index"] for e in log_events(loop_logs, "send_entry_failed")] == [4]


def test_an_entry_that_keeps_failing_is_reported_after_its_retries(sqs: Any) -> None:
    url = make_queue(sqs, "jobs")
    faulty = FaultyBatches(sqs, flaky={"b"}, flaky_times=99)
    report = send_messages(faulty, url, ["a", "b", "c"], clock=FakeClock())
    assert [(f.index, f.code, f.sender_fault) for f in report.failed] == [(1, "InternalError", False)]
    assert faulty.tries["b"] == ENTRY_RETRY.max_attempts
    assert "failed 1" in report.summary() and not report.ok


def test_a_throttled_call_is_retried_and_a_denied_one_stops_the_send_saying_where(sqs: Any) -> None:
    url = make_queue(sqs, "jobs")
    bodies = [f"job-{i}" for i in range(30)]
    faulty = FaultyBatches(sqs, raise_on_call={1: error("ThrottlingException"), 3: error("AccessDenied", 403)})
    with pytest.raises(
        SendIncomplete, match=re.escape("stopped at message 10 of 30 (10 sent, 0 failed, 20 not sent): AccessDenied")
    ) as caught:
        send_messages(faulty, url, bodies, clock=FakeClock())
    assert (caught.value.next_index, caught.value.report.unsent) == (10, 20)
    assert sorted(m["Body"] for m in drain(sqs, url)) == sorted(bodies[:10])


def test_fifo_queues_take_no_timers_and_keep_one_copy_of_a_retried_entry(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="jobs.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    with pytest.raises(BadSend, match="FIFO queue: SQS refuses per-message timers"):
        send_messages(sqs, url, ["a"], timers=Jitter(1, 2))
    with pytest.raises(BadSend, match="give a group id"):
        send_messages(sqs, url, ["a"])
    faulty = FaultyBatches(sqs, flaky={"b"})
    report = send_messages(faulty, url, ["a", "b", "c"], group_id="orders", clock=FakeClock())
    assert report.sent == 3
    first, retry = faulty.calls
    assert retry[0]["MessageDeduplicationId"] == first[1]["MessageDeduplicationId"]
    messages = drain(sqs, url)
    assert {m["Attributes"]["MessageGroupId"] for m in messages} == {"orders"}
    assert sorted(m["Body"] for m in messages) == ["a", "b", "c"]
