"""A loop invocation's counting of runs (docs/runs.md#counting): one write per run per batch, made after
the handler and before the delete, with the completion check riding on its answer.

    batch k:  handler ──► count write (run R) ──────────────────────────► delete ──► ids deleted
                          ADD done, pending_p += ids counted                         └─► to forget
                          DELETE pending_(1-p) -= ids of batch k-1 deleted               from pending_p
                          cond: each id counted is in no pending set and not failed
    batch k+1:            ADD pending_(1-p) ..., DELETE pending_p -= ids of batch k deleted

A message that comes back (a crash before its delete, a failed delete, an SQS duplicate while the first
copy is pending) is in a pending set, so the condition fails; the old item (free with the failure) says
which ids are already counted, and the write is made again without them. A retried request whose first
try landed fails its condition the same way and counts nothing twice. Ids still to forget when the
invocation ends are forgotten by :meth:`RunCounter.flush`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from poller.aws.errors import error_code
from poller.config import QueueConfig
from poller.exceptions import RetriesExhausted
from poller.logs import log
from poller.runs.book import RunBook
from poller.runs.table import CountWrite, RunStatus
from poller.runs.tag import tag_of_message
from poller.sqs.records import Message
from poller.sqs.redrive import RedriveLimit

Retry = Callable[[Callable[[], Any], str], Any]

MAX_ROUNDS = 6
"""Writes one run's batch may take: each failed condition removes the ids found counted, so two or three
do in the worst case seen (a retried request, then a deferred redriven id); more means writers keep
racing on the same ids, and what is left is logged and not counted rather than hold the batch."""


@dataclass
class _RunState:
    parity: int = 0  # the pending set the next write adds to
    forget: dict[int, set[str]] = field(default_factory=lambda: {0: set(), 1: set()})


@dataclass
class _Counted:
    """Where one run's ids of the current batch are pending: item id -> pending set."""

    run: str
    pending_in: dict[str, int] = field(default_factory=dict)


class RunCounter:
    """Counts the run messages of one loop invocation's batches; messages without a run cost nothing."""

    def __init__(
        self,
        book: RunBook,
        *,
        queue: QueueConfig,
        redrive: RedriveLimit,
        retry: Retry,
        log_fields: dict[str, object],
    ):
        self.book = book
        self.redrive = redrive  # which failures are a message's last (counted failed)
        self.queue = queue
        self._retry = retry
        self.fields = log_fields
        self._runs: dict[str, _RunState] = {}
        self._batch: dict[str, tuple[str, str, int]] = {}  # message id -> (run, item, pending set) this batch

    def count(
        self, done: Sequence[Message], failed: Sequence[Message], *, busy_s: float = 0.0, dispatched: int = 0
    ) -> None:
        """Count a batch's outcome before its delete: ``done`` succeeded, ``failed`` failed (those on their
        last allowed receive count as failed). ``busy_s``: seconds the batch of ``dispatched`` messages took,
        from which each run's write also adds the queue's time per message (what ``send --plan`` learns).
        Raises :class:`RetriesExhausted` when a write could not be made in time: the batch must not be
        deleted then (it comes back and is counted on a later try)."""
        self._batch = {}
        by_run: dict[str, tuple[dict[str, Message], dict[str, Message]]] = {}
        handled: dict[str, int] = {}
        for kind, messages in enumerate((done, failed)):
            for message in messages:
                tag = tag_of_message(message)
                if tag is None:
                    continue
                handled[tag.run] = handled.get(tag.run, 0) + 1
                if kind == 0 or self.redrive.last_receive(message):
                    by_run.setdefault(tag.run, ({}, {}))[kind][tag.item] = message
        # Seconds one message kept a consumer busy: the batch's time, times the records handled at once.
        per_message_s = busy_s * min(self.queue.concurrency, dispatched) / dispatched if dispatched else 0.0
        for run, (done_items, failed_items) in by_run.items():
            timing = (self.queue.key, round(per_message_s * handled[run] * 1000), handled[run])
            try:
                counted = self._retry(partial(self._count_run, run, done_items, failed_items, timing), "run_count")
            except RetriesExhausted:
                raise
            except Exception as exc:
                # Not transient (access denied, an item past 400 KB): the work stands, the count is lost.
                log(
                    "error",
                    "run_count_failed",
                    run=run,
                    code=error_code(exc) or type(exc).__name__,
                    error=str(exc)[:500],
                    items=sorted(done_items) + sorted(failed_items),
                    **self.fields,
                )
                continue
            for item, parity in counted.pending_in.items():
                self._batch[done_items[item]["MessageId"]] = (run, item, parity)

    def deleted(self, done: Sequence[Message], undeleted: Sequence[Message]) -> None:
        """After the delete: what was deleted is forgotten from the pending sets by the run's next write; what
        was not stays pending, so its next delivery is not counted again."""
        kept = {m["MessageId"] for m in undeleted}
        for message in done:
            entry = self._batch.get(message["MessageId"])
            if entry is not None and message["MessageId"] not in kept:
                run, item, parity = entry
                self._state(run).forget[parity].add(item)
        self._batch = {}

    def flush(self) -> None:
        """Forget what is still to forget (at the end of the invocation). Failures are logged: an id left
        pending only costs bytes on the run's row."""
        for run, state in self._runs.items():
            todo = {parity: frozenset(items) for parity, items in state.forget.items() if items}
            if not todo:
                continue
            try:
                self._retry(partial(self.book.table.forget, run, todo), "run_forget")
            except Exception as exc:
                log("warning", "run_forget_failed", run=run, error=repr(exc), **self.fields)
                continue
            state.forget = {0: set(), 1: set()}

    # -- one run's write -----------------------------------------------------------------------------

    def _count_run(
        self, run: str, done: dict[str, Message], failed: dict[str, Message], timing: tuple[str, int, int] | None
    ) -> _Counted:
        state = self._state(run)
        counted = _Counted(run)
        seen = RunStatus(run, 0, 0, 0, None, None)  # assume nothing counted yet; a failed condition corrects it
        todo_done, todo_failed = set(done), set(failed)
        for _ in range(MAX_ROUNDS):
            pending = seen.pending[0] | seen.pending[1]
            for item in todo_done & pending:  # counted by an earlier delivery (or by our own retried request)
                counted.pending_in[item] = 0 if item in seen.pending[0] else 1
            todo_done -= pending
            todo_failed -= pending | seen.failed_ids
            recovered = todo_done & seen.failed_ids
            if todo_failed:
                recovered = set()  # DynamoDB refuses ADD and DELETE on failed_ids in one update: next round
            new_done = todo_done - seen.failed_ids
            if not (new_done or recovered or todo_failed):
                return counted
            write = CountWrite(
                run,
                state.parity,
                add_pending=frozenset(new_done | recovered),
                new_failed=frozenset(todo_failed),
                recovered=frozenset(recovered),
                forget=frozenset(state.forget[1 - state.parity]),
                timing=timing,
            )
            applied, status = self.book.table.count(write)
            if status is None:
                log("warning", "run_unknown", run=run, items=sorted(todo_done | todo_failed), **self.fields)
                return counted
            if applied:
                for item in write.add_pending:
                    counted.pending_in[item] = state.parity
                state.forget[1 - state.parity] = set()
                state.parity = 1 - state.parity
                timing = None  # added once per batch
                todo_done -= write.add_pending
                todo_failed -= write.new_failed
                if recovered:
                    log("info", "run_recovered", run=run, items=sorted(recovered), **self.fields)
            self.book.notifier.check(status, fields=self.fields)
            seen = status
        log("warning", "run_count_gave_up", run=run, items=sorted(todo_done | todo_failed), **self.fields)
        return counted

    def _state(self, run: str) -> _RunState:
        return self._runs.setdefault(run, _RunState())
