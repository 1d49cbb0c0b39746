"""A batch cut into events whose JSON fits one synchronous Invoke (6 MB), as Lambda's own SQS trigger cuts
its batches: ten 1 MiB messages (SQS's largest, base64 or not) cannot go in one call."""

from __future__ import annotations

import json
from typing import Any

from poller.aws.limits import LAMBDA_SYNC_PAYLOAD_BYTES

_ENVELOPE_BYTES = len(b'{"Records": []}')
_SEPARATOR_BYTES = len(b", ")


def payload(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def fitting_events(event: dict[str, Any], limit_bytes: int = LAMBDA_SYNC_PAYLOAD_BYTES) -> list[dict[str, Any]]:
    """``event``'s records, in order, in as few events as fit ``limit_bytes`` each. A record that alone
    exceeds the limit (it cannot: a record is at most about 1.4 MB) still gets an event of its own, so that
    its failure is the function's answer, not ours."""
    events: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    size = _ENVELOPE_BYTES
    for record in event["Records"]:
        record_bytes = len(json.dumps(record).encode()) + (_SEPARATOR_BYTES if records else 0)
        if records and size + record_bytes > limit_bytes:
            events.append({**event, "Records": records})
            records, size = [], _ENVELOPE_BYTES
            record_bytes -= _SEPARATOR_BYTES
        records.append(record)
        size += record_bytes
    if records or not events:
        events.append({**event, "Records": records})
    return events
