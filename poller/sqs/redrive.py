"""The queue's redrive policy as one loop invocation needs it: is a message on its last allowed receive,
so that SQS moves it to the dead-letter queue instead of delivering it again? The run counter asks when a
run's message fails (it counts it ``failed`` then: docs/runs.md#the-dlq-path-and-what-a-redrive-does); the
give-back asks before it makes an unhandled message visible (poller/loop/give_back.py)."""

from __future__ import annotations

import json

from poller.logs import log
from poller.sqs.client import QueueClient
from poller.sqs.records import Message


def receive_count(message: Message) -> int:
    """The message's ApproximateReceiveCount (1 on its first delivery)."""
    try:
        return max(1, int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1)))
    except (TypeError, ValueError):
        return 1


class RedriveLimit:
    """The queue's ``maxReceiveCount``, read at most once per invocation and only when asked (one
    GetQueueAttributes); ``fallback`` when the read fails (``QueueConfig.known_max_receives``)."""

    def __init__(self, sqs: QueueClient, *, fallback: int | None, log_fields: dict[str, object]):
        self.sqs = sqs
        self.fallback = fallback
        self.fields = log_fields
        self._read = False
        self._max_receives: int | None = None  # None (once read): the queue has no DLQ

    def last_receive(self, message: Message) -> bool:
        """``message`` is on its last allowed receive: SQS moves it to the DLQ instead of the next."""
        limit = self.max_receives()
        return limit is not None and receive_count(message) >= limit

    def max_receives(self) -> int | None:
        if self._read:
            return self._max_receives
        self._read = True
        try:
            policy = self.sqs.attributes(["RedrivePolicy"]).get("RedrivePolicy")
            self._max_receives = int(json.loads(policy)["maxReceiveCount"]) if policy else None
        except Exception as exc:  # go on with the config's figure
            log("warning", "redrive_policy_unknown", error=repr(exc), using=self.fallback, **self.fields)
            self._max_receives = self.fallback
        return self._max_receives
