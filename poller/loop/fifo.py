"""What a FIFO queue changes in a loop (docs/loop.md#fifo-queues).

SQS hands out a message group's next messages only once none of the group is in flight. So on a FIFO queue
a batch's delete must be done before the next receive (in the background, that receive finds the group
still locked and waits a whole long poll), a record that failed must hold back its group's later records
of the same batch (deleting them would hand the group out of order), and a retried receive sends the same
``ReceiveRequestAttemptId`` (SQS then answers with the same messages instead of locking their groups until
the visibility timeout of a batch whose answer was lost).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from poller.sqs.records import Message
from poller.targets.base import Failure


def group_of(message: Message) -> str | None:
    """The message's ``MessageGroupId`` (None on a standard queue)."""
    group = message.get("Attributes", {}).get("MessageGroupId")
    return None if group is None else str(group)


def held_back(messages: Sequence[Message], failures: Mapping[str, Failure]) -> list[Message]:
    """The records of ``messages`` (in the order received) that come after a failed record of their group:
    they are given back with it rather than deleted, so the group is handed out again in order (Lambda's
    FIFO trigger leaves this to the handler: "stop processing after the first failure"). They go back at
    once: their group stays locked while its failed record waits out its own delay."""
    stopped: set[str] = set()
    held = []
    for message in messages:
        group = group_of(message)
        if group is None:
            continue
        if group in stopped:
            held.append(message)
        elif message["MessageId"] in failures:
            stopped.add(group)
    return held
