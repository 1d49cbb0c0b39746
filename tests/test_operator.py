"""The operator's redrive on moto: FIFO groups kept, nothing lost when a send fails."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from conftest import REGION

from ops.operator import Operator, RedriveIncomplete
from poller.clock import SYSTEM_CLOCK, epoch_ms
from poller.config import parse_config
from poller.lease.pace import PaceFigures

CONFIG = "queues:\n  jobs: {queue: jobs.fifo, handler: m.h, create: true}\n  plain: {queue: plain, handler: m.h, dlq: plain-dead}\n"


def make(sqs: Any, name: str, fifo: bool) -> str:
    attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "false"} if fifo else {}
    url: str = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url


def test_redrive_keeps_fifo_groups(sqs: Any) -> None:
    source, dlq = make(sqs, "jobs.fifo", True), make(sqs, "jobs-dlq.fifo", True)
    for n in range(3):
        sqs.send_message(
            QueueUrl=dlq, MessageBody=json.dumps({"n": n}), MessageGroupId=f"g{n % 2}", MessageDeduplicationId=str(n)
        )
    operator = Operator(parse_config(CONFIG), "p", REGION)

    said = operator.redrive("jobs", out=io.StringIO())

    assert said == "moved 3 messages by hand"
    got = sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10, MessageSystemAttributeNames=["MessageGroupId"])
    groups = sorted(m["Attributes"]["MessageGroupId"] for m in got["Messages"])
    assert groups == ["g0", "g0", "g1"]
    assert (
        int(sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"]["ApproximateNumberOfMessages"])
        == 0
    )


class RefusingSends:
    """The real client, but the target queue refuses every send."""

    def __init__(self, real: Any):
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:
        return {
            "Successful": [],
            "Failed": [{"Id": e["Id"], "SenderFault": False, "Code": "InternalError"} for e in Entries],
        }


def test_a_failed_send_leaves_the_message_in_the_dlq(sqs: Any) -> None:
    make(sqs, "plain", False)
    dlq = make(sqs, "plain-dead", False)
    sqs.send_message(QueueUrl=dlq, MessageBody="keep me")
    operator = Operator(parse_config(CONFIG), "p", REGION)
    operator.sqs = RefusingSends(operator.sqs)

    with pytest.raises(RedriveIncomplete, match="1 could not be sent and stay in the DLQ"):
        operator.redrive("plain", out=io.StringIO())

    attrs = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"]
    assert int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"]) == 1


def test_status_shows_the_rate_limits_cap_from_the_loops_paces(sqs: Any, tokens: Any) -> None:
    config = "queues:\n  emails: {queue: emails, handler: m.h, rate_limit: 30, max_loops: 4}\n"
    url = make(sqs, "emails", False)
    operator = Operator(parse_config(config), "p", REGION, table=tokens.model.Meta.table_name)
    now = epoch_ms(SYSTEM_CLOCK)
    tokens.create(url, "slot-0001", loop_id="L1", now_ms=now - 11_000)  # older than the cap's WARM_UP_S
    probe = operator.status()["emails"]["limited"]  # a loop without figures: one loop more at a time
    assert probe["figures"] == 0 and probe["says"] == "no figures yet: 2 loops at most, one more a step (30/s)"
    tokens.claim(url, "slot-0001", loop_id="L1", generation=0, claim_id="c", now_ms=now)
    tokens.heartbeat(url, "slot-0001", loop_id="L1", generation=1, now_ms=now, pace=PaceFigures(107, 0.93))
    limited = operator.status()["emails"]["limited"]
    assert limited["loops"] == 1 and limited["says"] == "1 loop keeps 30/s busy"
    off = Operator(
        parse_config("poller: {limit_cap: false}\n" + config), "p", REGION, table=tokens.model.Meta.table_name
    )
    assert off.status()["emails"]["limited"]["says"] == "1 loop keeps 30/s busy (not applied: poller.limit_cap)"
