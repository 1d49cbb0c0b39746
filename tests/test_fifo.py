"""FIFO queues through the loop, on moto (which keeps a group locked while any of its messages is in flight,
as SQS does): a group moves at full speed, a failed record holds back its group, poison ends in the DLQ,
and a retried receive sends the same ReceiveRequestAttemptId."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import sample_handlers
from conftest import LoopRig, RecordingInvoker, config_for, count
from test_transient import FlakySqs, client_error

from poller.lease.tokens import TokenStore


def make_fifo(sqs: Any, name: str, *, dlq_after: int | None = None) -> str:
    attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "true", "VisibilityTimeout": "30"}
    if dlq_after is not None:
        dlq = sqs.create_queue(QueueName=f"{name}-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": dlq_after})
    url: str = sqs.create_queue(QueueName=f"{name}.fifo", Attributes=attributes)["QueueUrl"]
    return url


def send_grouped(sqs: Any, url: str, messages: list[tuple[str, str]]) -> None:
    """(group, body) pairs, sent one by one in this order."""
    for group, body in messages:
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group)


def fifo_rig(sqs: Any, tokens: TokenStore, *, dlq_after: int | None = None, **settings: object) -> LoopRig:
    url = make_fifo(sqs, "orders", dlq_after=dlq_after)
    return LoopRig(sqs, tokens, url, config_for(url, **settings), RecordingInvoker())


def handled_in_order(group: str) -> list[str]:
    return [r["body"] for r in sample_handlers.seen if r["attributes"]["MessageGroupId"] == group]


def fail_first_sight_of(body: str) -> Any:
    """A handler that reports ``body`` failed the first time it sees it (batchItemFailures)."""
    seen: Counter[str] = Counter()

    def behaviour(event: dict[str, Any], context: Any) -> Any:
        failed = []
        for record in event["Records"]:
            seen[record["body"]] += 1
            if record["body"] == body and seen[body] == 1:
                failed.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failed}

    return behaviour


def test_a_single_group_moves_at_full_speed_and_in_order(sqs: Any, tokens: TokenStore) -> None:
    """25 messages of one group in batches of 10: each batch's delete is done before the next receive, so
    the group is never locked by our own delete and the three batches fit in one long poll's time (with the
    delete in the background, the second receive found the group locked and waited the whole poll)."""
    rig = fifo_rig(sqs, tokens, wait_time_s=3)
    send_grouped(sqs, rig.url, [("g", f"m{n:02}") for n in range(25)])

    outcome = rig.run(rig.create_token(), budget_s=7)  # one long poll of 3 s fits, not two

    assert handled_in_order("g") == [f"m{n:02}" for n in range(25)]
    assert (outcome.succeeded, outcome.batches) == (25, 3)
    assert count(sqs, rig.url) == (0, 0)


def test_a_failed_record_holds_back_its_group_not_the_others(sqs: Any, tokens: TokenStore) -> None:
    rig = fifo_rig(sqs, tokens, retry_backoff={"base_s": 1, "max_s": 1})
    send_grouped(sqs, rig.url, [("a", "a1"), ("b", "b1"), ("a", "a2"), ("b", "b2"), ("a", "a3")])
    sample_handlers.use(fail_first_sight_of("a2"))

    outcome = rig.run(rig.create_token(), budget_s=7)

    # a3 was handled in the batch where a2 failed, but not deleted: it came back after a2, in order.
    assert handled_in_order("a") == ["a1", "a2", "a3", "a2", "a3"]
    assert handled_in_order("b") == ["b1", "b2"]
    assert outcome.succeeded == 5 and count(sqs, rig.url) == (0, 0)


def test_a_poison_message_goes_to_the_dlq_and_its_group_goes_on(sqs: Any, tokens: TokenStore) -> None:
    rig = fifo_rig(sqs, tokens, dlq_after=2, retry_backoff={"base_s": 1, "max_s": 1})
    send_grouped(sqs, rig.url, [("a", "poison"), ("a", "after"), ("b", "other")])

    def behaviour(event: dict[str, Any], context: Any) -> Any:
        return {
            "batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "poison"]
        }

    sample_handlers.use(behaviour)

    rig.run(rig.create_token(), budget_s=9)

    dlq = sqs.get_queue_url(QueueName="orders-dlq.fifo")["QueueUrl"]
    in_dlq = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    # "after" was held back behind the poison at each receive (never deleted out of order), so it shared
    # its receives and went to the DLQ with it, behind it, as with Lambda's FIFO trigger; group b went on.
    assert [m["Body"] for m in in_dlq] == ["poison", "after"]
    assert handled_in_order("a") == ["poison", "after", "poison", "after"]
    assert handled_in_order("b") == ["other"]
    assert count(sqs, rig.url) == (0, 0)


def test_a_retried_receive_sends_the_same_attempt_id(sqs: Any, tokens: TokenStore) -> None:
    rig = fifo_rig(sqs, tokens)
    send_grouped(sqs, rig.url, [("g", "m1")])
    flaky = RecordingSqs(rig.sqs, {"receive_message": (1, client_error("InternalError", 500, "ReceiveMessage"))})

    rig.run(rig.create_token(), budget_s=8, sqs_client=flaky)

    ids = [params.get("ReceiveRequestAttemptId") for params in flaky.receives]
    assert len(ids) >= 3 and None not in ids
    assert ids[0] == ids[1]  # the failed receive and its retry
    assert len(set(ids[1:])) == len(ids) - 1  # every other receive has its own
    assert sample_handlers.bodies() == ["m1"]


class RecordingSqs(FlakySqs):
    """FlakySqs that also keeps the parameters of every ReceiveMessage."""

    def __init__(self, real: Any, failures: dict[str, tuple[int, Exception]]):
        super().__init__(real, failures)
        self.receives: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        call = super().__getattr__(name)
        if name != "receive_message":
            return call

        def receive(**kwargs: Any) -> Any:
            self.receives.append(kwargs)
            return call(**kwargs)

        return receive
