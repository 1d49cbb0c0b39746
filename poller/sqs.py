"""The SQS calls one loop makes, in batches of at most 10, with per-entry retries and error sorting."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from poller.aws_errors import is_queue_unavailable
from poller.clock import Clock
from poller.exceptions import QueueUnavailable
from poller.limits import SQS_MAX_BATCH
from poller.logs import log
from poller.records import Message
from poller.retry import Backoff

ENTRY_RETRY = Backoff(base_s=0.05, cap_s=1.0, max_attempts=4)
"""Entries of a batch call that failed on the service's side are sent again at most 3 more times."""


def _chunks(items: Sequence[Message], size: int = SQS_MAX_BATCH) -> list[Sequence[Message]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@dataclass
class QueueClient:
    """One queue, seen through a boto3 SQS client. Raises :class:`QueueUnavailable` when the queue is gone
    or access is denied; other errors propagate for the caller's transient-retry policy."""

    client: Any
    queue_url: str
    clock: Clock
    rand: random.Random

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = getattr(self.client, operation)(QueueUrl=self.queue_url, **params)
        except Exception as exc:
            if is_queue_unavailable(exc):
                code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
                raise QueueUnavailable(self.queue_url, code, exc) from exc
            raise
        return result

    def receive(self, *, max_messages: int, wait_s: int, visibility_timeout_s: int) -> list[Message]:
        result = self._call(
            "receive_message",
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=wait_s,
            VisibilityTimeout=visibility_timeout_s,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(result.get("Messages", []))

    def delete(self, messages: Sequence[Message]) -> list[Message]:
        """Delete ``messages``; returns those that could not be deleted (they will be delivered again)."""
        return self._batch("delete_message_batch", messages, {})

    def change_visibility(self, messages: Sequence[Message], timeout_s: int) -> list[Message]:
        """Set the visibility of in-flight ``messages`` to ``timeout_s`` from now (0 returns them at once);
        returns those it could not change."""
        return self._batch("change_message_visibility_batch", messages, {"VisibilityTimeout": timeout_s})

    def _batch(self, operation: str, messages: Sequence[Message], extra: dict[str, Any]) -> list[Message]:
        failed: list[Message] = []
        for chunk in _chunks(messages):
            pending = {str(i): m for i, m in enumerate(chunk)}
            for attempt in range(1, ENTRY_RETRY.max_attempts + 1):
                entries = [{"Id": i, "ReceiptHandle": m["ReceiptHandle"], **extra} for i, m in pending.items()]
                result = self._call(operation, Entries=entries)
                retry: dict[str, Message] = {}
                for failure in result.get("Failed", []):
                    message = pending[failure["Id"]]
                    # SenderFault: our request was wrong for this entry (a stale receipt handle after the
                    # visibility ran out): sending it again cannot help.
                    if failure.get("SenderFault") or attempt == ENTRY_RETRY.max_attempts:
                        log(
                            "warning",
                            "batch_entry_failed",
                            operation=operation,
                            queue_url=self.queue_url,
                            message_id=message.get("MessageId"),
                            code=failure.get("Code"),
                            detail=failure.get("Message"),
                        )
                        failed.append(message)
                    else:
                        retry[failure["Id"]] = message
                if not retry:
                    break
                pending = retry
                self.clock.sleep(ENTRY_RETRY.delay_s(attempt, self.rand))
        return failed
