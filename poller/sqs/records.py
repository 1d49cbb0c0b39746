"""The event Lambda's SQS trigger (the event source mapping) gives a handler, built from ReceiveMessage
output, and the reading of the handler's answer, so that existing SQS handlers drop in unchanged."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from poller.logs import log
from poller.sqs.queue_ref import NO_ACCOUNT, QueueRef

Message = dict[str, Any]


def queue_arn(queue_url: str, region: str) -> str:
    """``arn:<partition>:sqs:<region>:<account>:<name>`` from a queue URL, without an AWS call."""
    return QueueRef.of_url(queue_url).arn_in(region=region, account_id=NO_ACCOUNT)


def _b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    # The trigger writes camelCase keys, always the two list keys, and binary data as base64 text.
    out: dict[str, Any] = {}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = _b64(value["BinaryValue"])
    out["stringListValues"] = list(value.get("StringListValues", []))
    out["binaryListValues"] = [_b64(v) for v in value.get("BinaryListValues", [])]
    out["dataType"] = value.get("DataType", "String")
    return out


def esm_record(message: Message, *, arn: str, region: str) -> dict[str, Any]:
    """One record, field for field as the SQS trigger delivers it."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": {k: str(v) for k, v in message.get("Attributes", {}).items()},
        "messageAttributes": {k: _message_attribute(v) for k, v in message.get("MessageAttributes", {}).items()},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def esm_event(messages: Sequence[Message], *, arn: str, region: str) -> dict[str, Any]:
    return {"Records": [esm_record(m, arn=arn, region=region) for m in messages]}


def failed_ids(answer: object, batch_ids: Sequence[str], *, log_fields: dict[str, object]) -> set[str]:
    """Message ids the handler's answer marks failed, read as the SQS trigger reads a partial batch
    response: ``None``, ``{}`` or an empty/null ``batchItemFailures`` means all succeeded; an item
    whose ``itemIdentifier`` is missing, empty or not in the batch, or an answer of another type, fails
    the whole batch."""
    if answer is None:
        return set()
    if not isinstance(answer, dict):
        return _whole_batch(batch_ids, f"handler returned {type(answer).__name__}; expected None or a dict", log_fields)
    items = answer.get("batchItemFailures")
    if items is None:
        return set()
    if not isinstance(items, list):
        return _whole_batch(batch_ids, "batchItemFailures is not a list", log_fields)
    known = set(batch_ids)
    failed: set[str] = set()
    for item in items:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(ident, str) or ident not in known:
            return _whole_batch(batch_ids, f"batchItemFailures has an invalid item {item!r}", log_fields)
        failed.add(ident)
    return failed


def _whole_batch(batch_ids: Sequence[str], why: str, log_fields: dict[str, object]) -> set[str]:
    log("error", "bad_batch_response", why=why, outcome="whole batch failed", **log_fields)
    return set(batch_ids)
