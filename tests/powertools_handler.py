"""An SQS handler written for Lambda's own trigger with Powertools' batch processor, used unchanged."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

processor = BatchProcessor(event_type=EventType.SQS)
handled: list[str] = []


def record_handler(record: SQSRecord) -> None:
    if record.body.startswith("bad"):
        raise ValueError(f"cannot handle {record.body}")
    handled.append(record.body)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
