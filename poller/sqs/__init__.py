"""SQS as one loop uses it: queue references, the receive / delete / visibility calls with per-entry
retries, and the records of the SQS trigger's event."""

from __future__ import annotations

from poller.sqs.client import QueueClient
from poller.sqs.entries import EntriesOutcome, EntryFailure, call_with_entry_retries
from poller.sqs.queue_ref import QueueRef, is_queue_url
from poller.sqs.records import Message, esm_event, esm_record, failed_ids, queue_arn

__all__ = [
    "EntriesOutcome",
    "EntryFailure",
    "Message",
    "QueueClient",
    "QueueRef",
    "call_with_entry_retries",
    "esm_event",
    "esm_record",
    "failed_ids",
    "is_queue_url",
    "queue_arn",
]
