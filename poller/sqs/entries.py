"""SQS's batch calls (SendMessageBatch, DeleteMessageBatch, ChangeMessageVisibilityBatch) answer per entry:
some entries can fail while the call succeeds. Entries that failed on the service's side are sent again
with backoff; those SQS refused (``SenderFault``: a stale receipt handle, a body it will not take) are not,
since sending them again cannot help. One place for this rule, used by the loop and by producers."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from poller.aws.retry import Backoff
from poller.clock import Clock

T = TypeVar("T")


@dataclass(frozen=True)
class EntryFailure(Generic[T]):
    """An entry that failed for good: SQS refused it, or it outlasted the retries."""

    item: T
    code: str
    detail: str
    sender_fault: bool


@dataclass
class EntriesOutcome(Generic[T]):
    """What one batch of entries came to: how many calls it took, entries sent again, and the failures."""

    calls: int = 0
    succeeded: int = 0
    retried: int = 0
    failed: list[EntryFailure[T]] = field(default_factory=list)


def call_with_entry_retries(
    call: Callable[[list[dict[str, Any]]], dict[str, Any]],
    items: Sequence[T],
    entry: Callable[[str, T], dict[str, Any]],
    *,
    backoff: Backoff,
    clock: Clock,
    rand: random.Random,
) -> EntriesOutcome[T]:
    """Call ``call(entries)`` for ``items`` (at most 10), ``entry(id, item)`` making each entry (asked
    again at each attempt), until no entry failed on the service's side or ``backoff`` runs out."""
    # Entry ids need only be unique within a request: the position in the batch.
    pending = {str(position): item for position, item in enumerate(items)}
    outcome: EntriesOutcome[T] = EntriesOutcome()
    for attempt in range(1, backoff.max_attempts + 1):
        result = call([entry(entry_id, item) for entry_id, item in pending.items()])
        outcome.calls += 1
        outcome.succeeded += len(result.get("Successful", []))
        retry: dict[str, T] = {}
        for failure in result.get("Failed", []):
            item = pending[failure["Id"]]
            sender_fault = bool(failure.get("SenderFault"))
            if sender_fault or attempt == backoff.max_attempts:
                code, detail = str(failure.get("Code")), str(failure.get("Message", ""))
                outcome.failed.append(EntryFailure(item, code, detail, sender_fault))
            else:
                retry[failure["Id"]] = item
        if not retry:
            break
        outcome.retried += len(retry)
        pending = retry
        clock.sleep(backoff.delay_s(attempt, rand))
    return outcome
