"""The reliability invariants of a sandbox run, computed from its trace (docs/reliability.md): pure
functions of what was recorded, so they are tested without a sandbox.

Times are epoch seconds unless a name says otherwise."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sandbox.demo.handlers import Delivery
from sandbox.faults import OwnerChange


@dataclass(frozen=True)
class BatchSeen:
    """A batch a loop started (from its ``batch`` log line: the line's time less the batch's duration)."""

    started: float
    queue_url: str
    token: str
    loop_id: str
    generation: int


def double_owned(batches: Iterable[BatchSeen], changes: Iterable[OwnerChange]) -> list[dict[str, Any]]:
    """Batches a loop started after its ownership of the token had ended: after a takeover gave the row to
    another loop, or after the row was deleted. The batch in hand at that moment started before the end,
    so it is allowed: the protocol stops a loop after it, not during it. Every batch returned is a
    violation."""
    history: dict[tuple[str, str], list[OwnerChange]] = defaultdict(list)
    for change in sorted(changes, key=lambda c: c.t):
        history[(change.queue_url, change.token)].append(change)
    violations = []
    for batch in batches:
        events = history[(batch.queue_url, batch.token)]
        became = next((c.t for c in events if c.loop_id == batch.loop_id), None)
        if became is None:
            continue  # no write seen (a trace that started late): nothing to compare against
        ended = next((c for c in events if c.t > became and c.loop_id != batch.loop_id), None)
        if ended is not None and batch.started > ended.t:
            violations.append(
                {
                    "token": batch.token,
                    "loop_id": batch.loop_id,
                    "generation": batch.generation,
                    "batch_started_after_s": round(batch.started - ended.t, 3),
                    "ownership_ended_by": "deleted" if ended.loop_id is None else "taken_over",
                }
            )
    return violations


DUPLICATE_CAUSES = {
    "crash": "the invocation died after handling the batch and before deleting it; the batch came back "
    "when its visibility timeout ran out",
    "delete_failed": "the delete of a handled message failed (logged as delete_failed, processed_not_deleted "
    "or batch_entry_failed); SQS delivered it again",
    "visibility_expired_in_hand": "the message was delivered again while its first handling was still "
    "running: its visibility ran out in hand",
    "unexplained": "none of the above",
}


def duplicate_causes(
    deliveries: Sequence[Delivery], crashed_receipts: set[str], undeleted_message_ids: set[str]
) -> list[dict[str, Any]]:
    """Why each extra handling of a message happened, judged on the handling before it: one entry per
    repeat, with the cause and the receive counts of both handlings."""
    by_job: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        by_job[delivery.job_id].append(delivery)
    repeats = []
    for handled in by_job.values():
        handled.sort(key=lambda d: d.started)
        for before, again in itertools.pairwise(handled):
            if before.receipt_handle in crashed_receipts:
                cause = "crash"
            elif before.message_id in undeleted_message_ids:
                cause = "delete_failed"
            elif again.started < before.ended:
                cause = "visibility_expired_in_hand"
            else:
                cause = "unexplained"
            repeats.append(
                {
                    "job": before.job_id,
                    "cause": cause,
                    "receive_counts": [before.receive_count, again.receive_count],
                    "same_receipt": before.receipt_handle == again.receipt_handle,
                    "gap_s": round(again.started - before.ended, 3),
                }
            )
    return repeats


def count_causes(repeats: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    return dict(sorted(Counter(r["cause"] for r in repeats).items()))


def time_to_converge_s(samples: Sequence[Mapping[str, Any]], since_s: float) -> float | None:
    """Seconds from ``since_s`` (run time, as the samples' ``t``) to the first sample in which every queue
    has exactly its wanted number of working loops; None if that never happened."""
    for sample in samples:
        if sample["t"] < since_s:
            continue
        if all(q["working"] == q["wanted"] for q in sample["queues"].values()):
            return round(float(sample["t"]) - since_s, 2)
    return None
