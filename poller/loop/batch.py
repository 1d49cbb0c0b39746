"""One received batch: dispatch it while the keeper holds it (heartbeat, visibility), give back at once what
was never dispatched, delay what failed by its retry backoff, and delete what succeeded (in the background,
while the loop's next receive waits)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from poller.clock import Clock, epoch_ms
from poller.config import PollerSettings, QueueConfig
from poller.downstream.dispatch import BatchResult, Dispatcher
from poller.exceptions import RetriesExhausted
from poller.lease.lease import Lease
from poller.logs import log
from poller.loop.fifo import held_back
from poller.loop.give_back import GiveBack
from poller.loop.keeper import KeeperThread
from poller.loop.outcome import Outcome
from poller.loop.redelivery import redelivery_plan
from poller.metrics import (
    BATCH_DURATION,
    HANDLER_DURATION,
    MESSAGE_AGE,
    MESSAGES_FAILED,
    MESSAGES_HANDLED,
    MESSAGES_RECEIVED,
    MESSAGES_RETURNED,
    SHARE_WAIT,
    Metric,
    with_metrics,
)
from poller.runs import RunBook, RunCounter
from poller.sqs.client import QueueClient
from poller.sqs.records import Message
from poller.sqs.redrive import RedriveLimit

Retry = Callable[[Callable[[], Any], str], Any]
"""The loop's transient-retry policy: ``retry(call, what)`` within the invocation's time."""


class BatchWork:
    """What a loop does with each batch it receives. ``may_start`` says whether one more record may still
    be dispatched (the lease holds and the time allows); ``retry`` is the loop's retry policy."""

    def __init__(
        self,
        *,
        sqs: QueueClient,
        queue: QueueConfig,
        settings: PollerSettings,
        context: Any,
        clock: Clock,
        rand: random.Random,
        retry: Retry,
        may_start: Callable[[], bool],
        outcome: Outcome,
        log_fields: dict[str, object],
        runs: RunBook | None = None,
    ):
        self.sqs = sqs
        self.queue = queue
        self.settings = settings
        self.context = context
        self.clock = clock
        self.rand = rand
        self._retry = retry
        self.may_start = may_start
        self.outcome = outcome
        self.fields = log_fields
        redrive = RedriveLimit(sqs, fallback=queue.known_max_receives, log_fields=log_fields)
        # What it will not handle, visible again at once (a message on its last receive as a copy).
        self.give_back = GiveBack(sqs, redrive, fifo=queue.ref.fifo, log_fields=log_fields)
        # Counts run messages (docs/runs.md); None: the deployment counts no runs.
        self.runs = (
            None if runs is None else RunCounter(runs, queue=queue, redrive=redrive, retry=retry, log_fields=log_fields)
        )
        interval = min(queue.visibility_timeout_s / 3, settings.keeper_interval_s)
        # Two threads, kept for the whole invocation: the visibility extension never waits on a heartbeat (a
        # slow DynamoDB would let the messages become visible to another consumer while their handler still
        # runs), nor the other way.
        self.heartbeat_keeper = KeeperThread(interval_s=interval, log_fields=log_fields)
        self.visibility_keeper = KeeperThread(interval_s=interval, log_fields=log_fields)

    def close(self) -> None:
        """End the keepers' threads (at the end of the invocation)."""
        self.heartbeat_keeper.close()
        self.visibility_keeper.close()

    def process(self, messages: list[Message], dispatcher: Dispatcher, lease: Lease, received_at: float) -> BatchResult:
        """Dispatch the batch; what was never dispatched is made visible again at once, what failed after its
        retry backoff, both before the next receive (so it can see them)."""
        visibility = VisibilityTick(self.sqs, messages, self.queue.visibility_timeout_s, self.clock, received_at)
        # Dispatched with no share yet, the batch is a new lane's probe: one message received to learn there is
        # work, then a wait for the lane's first switch. What it did not wait is the step's start-up, not its
        # records' work (the demo's new loops measured 2-7 records a second on it, against 20-80 from their
        # next batches, and the cap asked for a loop more): it samples nothing of the loop's pace.
        sampled = dispatcher.rate is None or dispatcher.rate.per_second() > 0
        with (
            self.heartbeat_keeper.keeping(lease.heartbeat_from_keeper),
            self.visibility_keeper.keeping(visibility.tick),
        ):
            result = dispatcher.run(messages, self.context, may_start=self.may_start)
        handed = len(messages) - len(result.returned)
        waited_s = result.waited_ms / 1000
        now = self.clock.monotonic()
        lease.pace.batch(handed=handed, waited_s=waited_s, received_at=received_at, now=now, sampled=sampled)
        if self.queue.ref.fifo:  # a failed record holds back its group's later records (poller/loop/fifo.py)
            returned = {m["MessageId"] for m in result.returned}
            result.returned += held_back([m for m in messages if m["MessageId"] not in returned], result.failures)
        if result.returned:
            self.give_back(result.returned)
        self._delay_failed(messages, result)
        return result

    def delete_done(self, messages: list[Message], result: BatchResult, *, started: float) -> None:
        """Delete what succeeded (in the background, while the next receive waits: see
        :mod:`poller.loop.background_delete`)."""
        returned = {m["MessageId"] for m in result.returned}
        done = [m for m in messages if m["MessageId"] not in result.failures and m["MessageId"] not in returned]
        try:
            if self.runs is not None:  # before the delete: a crash in between leaves the ids pending, not lost
                failed = [m for m in messages if m["MessageId"] in result.failures]
                busy_s = self.clock.monotonic() - started
                self.runs.count(done, failed, busy_s=busy_s, dispatched=len(messages) - len(result.returned))
            undeleted = self._retry(lambda: self.sqs.delete(done), "delete") if done else []
        except RetriesExhausted as exc:
            # Processed but not deleted: SQS delivers them again (a duplicate, never a loss).
            log(
                "error",
                "delete_failed",
                what=exc.what,
                error=str(exc),
                message_ids=[m["MessageId"] for m in done],
                **self.fields,
            )
            raise
        finally:
            self._count_batch(messages, done, result, started)
        if self.runs is not None:
            self.runs.deleted(done, undeleted)
        if undeleted:
            log(
                "warning",
                "processed_not_deleted",
                message_ids=[m["MessageId"] for m in undeleted],
                **self.fields,
            )

    def _delay_failed(self, messages: list[Message], result: BatchResult) -> None:
        """Failed messages come back after their retry backoff (or a Retry-After), when there is one."""
        plan = redelivery_plan(
            messages,
            result.failures,
            self.queue.retry_backoff,
            self.rand,
            has_dlq=self.queue.dlq_name is not None,
        )
        if not plan:
            return
        try:
            self.sqs.set_visibilities(plan)
        except Exception as exc:  # they come back after their visibility timeout instead: sooner, not lost
            log("warning", "retry_backoff_failed", error=repr(exc), **self.fields)
            return
        log("info", "retry_backoff", delays_s={m["MessageId"]: s for m, s in plan}, **self.fields)

    def _count_batch(self, messages: list[Message], done: list[Message], result: BatchResult, started: float) -> None:
        self.outcome.batches += 1
        self.outcome.received += len(messages)
        self.outcome.succeeded += len(done)
        self.outcome.failed += len(result.failures)
        self.outcome.returned += len(result.returned)
        duration_ms = round((self.clock.monotonic() - started) * 1000, 1)
        now_ms = epoch_ms(self.clock)
        fields = {
            "received": len(messages),
            "succeeded": len(done),
            "failed": len(result.failures),
            "returned": len(result.returned),
            "duration_ms": duration_ms,
            **self.fields,
        }
        metrics: dict[Metric, float | list[float]] = {
            MESSAGES_RECEIVED: len(messages),
            MESSAGES_HANDLED: len(done),
            MESSAGES_FAILED: len(result.failures),
            MESSAGES_RETURNED: len(result.returned),
            BATCH_DURATION: duration_ms,
            HANDLER_DURATION: result.calls_ms,
            MESSAGE_AGE: message_ages_ms(messages, received_ms=now_ms - duration_ms),
            SHARE_WAIT: result.waited_ms,
        }
        log("info", "batch", **with_metrics(fields, metrics, timestamp_ms=now_ms, enabled=self.settings.metrics))


def message_ages_ms(messages: list[Message], *, received_ms: float) -> list[float]:
    """Each message's age at its receive (epoch milliseconds), from its ``SentTimestamp``; a message
    without one (a stand-in that leaves it out) has no age to report."""
    ages = []
    for message in messages:
        sent = message.get("Attributes", {}).get("SentTimestamp")
        if sent is not None and str(sent).isdigit():
            ages.append(max(0.0, received_ms - int(sent)))
    return ages


class VisibilityTick:
    """The visibility keeper's tick while a handler runs: every third of the visibility timeout (counted from
    the receive) push the batch's visibility out again."""

    def __init__(self, sqs: QueueClient, messages: list[Message], timeout_s: int, clock: Clock, received_at: float):
        self.sqs = sqs
        self.messages = messages
        self.timeout_s = timeout_s
        self.clock = clock
        self.extended_at = received_at

    def tick(self) -> None:
        if self.clock.monotonic() - self.extended_at >= self.timeout_s / 3:
            self.extended_at = self.clock.monotonic()
            self.sqs.change_visibility(self.messages, self.timeout_s)
