"""The SQS calls one loop makes, in batches of at most 10, with per-entry retries and error sorting."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from poller.aws.errors import is_queue_unavailable
from poller.aws.limits import SQS_MAX_BATCH
from poller.aws.retry import Backoff
from poller.clock import Clock
from poller.exceptions import QueueUnavailable
from poller.logs import log
from poller.sqs.entries import call_with_entry_retries
from poller.sqs.records import Message

ENTRY_RETRY = Backoff(base_s=0.05, cap_s=1.0, max_attempts=4)
"""Entries of a batch call that failed on the service's side are sent again at most 3 more times."""


@dataclass
class QueueClient:
    """One queue, seen through a boto3 SQS client. Raises :class:`QueueUnavailable` when the queue is gone
    or access is denied; other errors propagate for the caller's transient-retry policy."""

    client: Any
    queue_url: str
    clock: Clock
    rand: random.Random
    receive_client: Callable[[int], Any] | None = None
    """A client for long polls of a given wait (its read timeout follows the wait:
    :func:`poller.aws.clients.sqs_receive_client`); None: ``client`` for those too."""

    def _call(self, operation: str, *, via: Any = None, **params: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = getattr(via or self.client, operation)(QueueUrl=self.queue_url, **params)
        except Exception as exc:
            if is_queue_unavailable(exc):
                code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
                raise QueueUnavailable(self.queue_url, code, exc) from exc
            raise
        return result

    def receive(
        self, *, max_messages: int, wait_s: int, visibility_timeout_s: int, attempt_id: str | None = None
    ) -> list[Message]:
        """``attempt_id``: a FIFO queue's ``ReceiveRequestAttemptId``, the same on every retry of one receive."""
        extra = {} if attempt_id is None else {"ReceiveRequestAttemptId": attempt_id}
        result = self._call(
            "receive_message",
            via=None if self.receive_client is None else self.receive_client(wait_s),
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=wait_s,
            VisibilityTimeout=visibility_timeout_s,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
            **extra,
        )
        return list(result.get("Messages", []))

    def attributes(self, names: Sequence[str]) -> dict[str, str]:
        """The queue's attributes ``names`` (GetQueueAttributes; those it does not have are left out)."""
        return dict(self._call("get_queue_attributes", AttributeNames=list(names)).get("Attributes", {}))

    def delete(self, messages: Sequence[Message]) -> list[Message]:
        """Delete ``messages``; returns those that could not be deleted (they will be delivered again)."""
        return self._batch("delete_message_batch", [(m, _handle(m)) for m in messages])

    def change_visibility(self, messages: Sequence[Message], timeout_s: int) -> list[Message]:
        """Set the visibility of in-flight ``messages`` to ``timeout_s`` from now (0 returns them at once);
        returns those it could not change."""
        return self.set_visibilities([(m, timeout_s) for m in messages])

    def set_visibilities(self, timeouts: Sequence[tuple[Message, int]]) -> list[Message]:
        """Each message's own visibility timeout, in seconds from now; returns those it could not change."""
        return self._batch(
            "change_message_visibility_batch", [(m, {**_handle(m), "VisibilityTimeout": t}) for m, t in timeouts]
        )

    def send_copies(self, messages: Sequence[Message]) -> list[Message]:
        """Send each of ``messages`` again as a new message (its body, message attributes and trace header;
        a standard queue only): the copy starts at receive count 0. Returns those not sent."""
        return self._batch("send_message_batch", [(m, _copy(m)) for m in messages])

    def _batch(self, operation: str, pairs: Sequence[tuple[Message, dict[str, Any]]]) -> list[Message]:
        """Each pair: a message and its entry's fields (all but the ``Id``)."""
        failed: list[Message] = []
        for start in range(0, len(pairs), SQS_MAX_BATCH):
            outcome = call_with_entry_retries(
                lambda entries: self._call(operation, Entries=entries),
                pairs[start : start + SQS_MAX_BATCH],
                lambda entry_id, pair: {"Id": entry_id, **pair[1]},
                backoff=ENTRY_RETRY,
                clock=self.clock,
                rand=self.rand,
            )
            for failure in outcome.failed:
                message = failure.item[0]
                log(
                    "warning",
                    "batch_entry_failed",
                    operation=operation,
                    queue_url=self.queue_url,
                    message_id=message.get("MessageId"),
                    code=failure.code,
                    detail=failure.detail,
                )
                failed.append(message)
        return failed


def _handle(message: Message) -> dict[str, Any]:
    return {"ReceiptHandle": message["ReceiptHandle"]}


_SENT_KEYS = ("DataType", "StringValue", "BinaryValue")  # SendMessage refuses the list values ReceiveMessage shows


def _copy(message: Message) -> dict[str, Any]:
    entry: dict[str, Any] = {"MessageBody": message.get("Body", "")}
    attributes = {
        name: {k: v for k, v in value.items() if k in _SENT_KEYS}
        for name, value in message.get("MessageAttributes", {}).items()
    }
    if attributes:
        entry["MessageAttributes"] = attributes
    trace = message.get("Attributes", {}).get("AWSTraceHeader")
    if trace:
        entry["MessageSystemAttributes"] = {"AWSTraceHeader": {"DataType": "String", "StringValue": trace}}
    return entry
