"""Giving back messages a loop received but will not handle (its turn did not come in time, the lease was
lost, the step's time is short, or they were received ahead): they are made visible again at once, rather
than after their visibility timeout.

Every receive counts toward the queue's ``maxReceiveCount``, handled or not. A message given back on its
last allowed receive would be moved to the dead-letter queue by SQS at its next receive without ever having
failed there: a good message in the DLQ, and a run one message short (docs/runs.md). On a standard queue such
a message is sent again as a fresh copy (receive count 0; its body, attributes and run tag kept) and the
original deleted: two more calls, only for messages on their last receive. A FIFO queue's copy would lose
its place in its group, so there it is given back as it is (docs/reliability.md#given-back-messages)."""

from __future__ import annotations

from poller.logs import log
from poller.sqs.client import QueueClient
from poller.sqs.records import Message
from poller.sqs.redrive import RedriveLimit, receive_count


class GiveBack:
    def __init__(self, sqs: QueueClient, redrive: RedriveLimit, *, fifo: bool, log_fields: dict[str, object]):
        self.sqs = sqs
        self.redrive = redrive
        self.fifo = fifo
        self.fields = log_fields

    def __call__(self, messages: list[Message]) -> None:
        """Never raises: what cannot be given back comes back by itself when its visibility timeout ends."""
        if not messages:
            return
        try:
            last = self._last_receives(messages)
            unsent = self._copy(last) if last else []
            copied = {m["MessageId"] for m in last} - {m["MessageId"] for m in unsent}
            self.sqs.change_visibility([m for m in messages if m["MessageId"] not in copied], 0)
        except Exception as exc:
            log("warning", "give_back_failed", error=repr(exc), **self.fields)

    def _last_receives(self, messages: list[Message]) -> list[Message]:
        if self.fifo:
            return []
        # The redrive policy is read (once per invocation) only for a message received before, so a loop that
        # gives back first deliveries, as at the end of most steps, makes no extra call. (A queue whose
        # maxReceiveCount is 1 says so with the config's max_receive_count: its first delivery is its last.)
        first_is_last = self.redrive.fallback == 1
        return [m for m in messages if (first_is_last or receive_count(m) > 1) and self.redrive.last_receive(m)]

    def _copy(self, messages: list[Message]) -> list[Message]:
        """Send copies of ``messages`` and delete them; returns those to give back as they are instead."""
        try:
            unsent = self.sqs.send_copies(messages)
        except Exception as exc:  # e.g. no sqs:SendMessage on the queue: given back as they are
            log("warning", "give_back_copy_failed", error=repr(exc), **self.fields)
            return messages
        unsent_ids = {m["MessageId"] for m in unsent}
        sent = [m for m in messages if m["MessageId"] not in unsent_ids]
        try:
            undeleted = [m["MessageId"] for m in self.sqs.delete(sent)] if sent else []
        except Exception as exc:
            undeleted = [f"{m['MessageId']}: {exc!r}" for m in sent]
        log(
            "warning",
            "given_back_as_copies",
            message_ids=[m["MessageId"] for m in sent],
            unsent=sorted(unsent_ids),
            undeleted=undeleted,  # its copy is out too: a duplicate, never a loss
            **self.fields,
        )
        return unsent
