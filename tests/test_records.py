"""The handler's event is the SQS trigger's, field for field; its answer is read as the trigger reads it."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from conftest import make_queue

from poller.sqs.client import QueueClient
from poller.sqs.records import esm_event, failed_ids, queue_arn

ESM_RECORD_KEYS = {
    "messageId",
    "receiptHandle",
    "body",
    "attributes",
    "messageAttributes",
    "md5OfBody",
    "eventSource",
    "eventSourceARN",
    "awsRegion",
}


def test_record_has_the_trigger_shape(sqs: Any) -> None:
    url = make_queue(sqs, "shape")
    sqs.send_message(
        QueueUrl=url,
        MessageBody='{"order": 1}',
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "order"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
            "n": {"DataType": "Number", "StringValue": "7"},
        },
    )
    import random

    from poller.clock import SYSTEM_CLOCK

    messages = QueueClient(sqs, url, SYSTEM_CLOCK, random.Random()).receive(
        max_messages=10, wait_s=0, visibility_timeout_s=30
    )
    event = esm_event(messages, arn=queue_arn(url, "us-east-1"), region="us-east-1")
    (record,) = event["Records"]
    assert set(record) >= ESM_RECORD_KEYS
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == "arn:aws:sqs:us-east-1:123456789012:shape"
    assert record["md5OfBody"] == hashlib.md5(b'{"order": 1}').hexdigest()
    assert record["body"] == '{"order": 1}'
    attributes = record["attributes"]
    for name in ("ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"):
        assert isinstance(attributes[name], str)
    assert attributes["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["kind"] == {
        "stringValue": "order",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["messageAttributes"]["blob"]["binaryValue"] == base64.b64encode(b"\x00\x01").decode()
    assert record["messageAttributes"]["n"]["dataType"] == "Number"


def test_queue_arn_from_url() -> None:
    assert queue_arn("https://sqs.eu-west-1.amazonaws.com/210987654321/q.fifo", "eu-west-1") == (
        "arn:aws:sqs:eu-west-1:210987654321:q.fifo"
    )


IDS = ["a", "b", "c"]


@pytest.mark.parametrize(
    ("answer", "failed"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": None}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "c"}]}, {"a", "c"}),
        # What the trigger treats as a failure of the whole batch:
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, set(IDS)),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, set(IDS)),
        ({"batchItemFailures": [{"itemId": "a"}]}, set(IDS)),
        ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, set(IDS)),
        ({"batchItemFailures": "a"}, set(IDS)),
        ("ok", set(IDS)),
    ],
)
def test_partial_batch_answers(answer: object, failed: set[str]) -> None:
    assert failed_ids(answer, IDS, log_fields={}) == failed


def test_a_messages_trace_header_reaches_the_handler_as_the_trigger_passes_it(rig_factory: Any) -> None:
    """The trigger gives a record ``attributes.AWSTraceHeader`` when the message was sent under X-Ray."""
    import sample_handlers

    rig = rig_factory()
    header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    rig.sqs.send_message(
        QueueUrl=rig.url,
        MessageBody="traced",
        MessageSystemAttributes={"AWSTraceHeader": {"StringValue": header, "DataType": "String"}},
    )
    rig.sqs.send_message(QueueUrl=rig.url, MessageBody="plain")
    rig.run(rig.create_token(), budget_s=6)
    by_body = {r["body"]: r["attributes"] for r in sample_handlers.seen}
    assert by_body["traced"]["AWSTraceHeader"] == header
    assert "AWSTraceHeader" not in by_body["plain"]
