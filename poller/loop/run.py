"""One invocation of a loop: claim, work while the time allows, recurse (docs/loop.md).

claim ──► [ keep lease ─► receive ─► keep lease ─► target (keeper) ─► delete ] * ──► invoke next step
  │                                                                             │
  └─ lost: exit quietly         lost / retiring: stop after the batch in hand (loop/retiring.py) ──┘
"""

from __future__ import annotations

import traceback
import uuid
from functools import partial
from typing import Any

from poller.aws.clients import DYNAMODB_CALL_WORST_S, INVOKE_CALL_WORST_S, TOKEN_CALL_WORST_S
from poller.aws.retry import Backoff, retry_transient
from poller.clock import Deadline, epoch_ms
from poller.config import PollerSettings, QueueConfig
from poller.downstream.coordinator import Turns, turns_for
from poller.downstream.dispatch import Dispatcher
from poller.downstream.state import store_beside
from poller.exceptions import HandlerImportError, InvocationTooShort, QueueUnavailable, RetriesExhausted, TokenLost
from poller.lease.lease import Lease
from poller.lease.step import LoopStep
from poller.logs import log
from poller.loop.background_delete import BackgroundDelete
from poller.loop.batch import BatchWork
from poller.loop.growth import GrowthWatch
from poller.loop.outcome import Outcome
from poller.loop.receive_ahead import Receiver
from poller.loop.retiring import must_stop, share_left
from poller.loop.services import LoopServices
from poller.metrics import LOOPS_STOPPED, RECURSIONS, with_metrics
from poller.sqs.client import QueueClient
from poller.sqs.records import queue_arn
from poller.targets import make_target
from poller.timing import RECURSE_RESERVE_S

RECURSION_BACKOFF = Backoff(base_s=0.2, cap_s=2.0, max_attempts=5)
"""Invoking the next step is tried 5 times (within the time left); after that restart revives the token."""


class Loop:
    """Runs one step of one loop on one queue. ``function`` is the function to invoke for the next step
    (the invoked ARN, so the qualifier is kept)."""

    def __init__(
        self,
        step: LoopStep,
        *,
        queue: QueueConfig,
        settings: PollerSettings,
        services: LoopServices,
        context: Any,
        function: str,
    ):
        self.step = step
        self.queue = queue
        self.settings = settings
        self.services = services
        self.context = context
        self.function = function
        self.clock = services.clock
        self.deadline = Deadline(context)
        self.sqs = QueueClient(
            services.sqs_client, step.queue_url, self.clock, services.rand, services.sqs_receive_client
        )
        self.arn = queue_arn(step.queue_url, services.region)
        self.fields: dict[str, object] = {"queue": queue.key, **step.log_fields()}
        self.outcome = Outcome()
        self.lease: Lease | None = None
        self.rate: Turns | None = None
        self.batches = BatchWork(
            sqs=self.sqs,
            queue=queue,
            settings=settings,
            context=context,
            clock=self.clock,
            rand=services.rand,
            retry=self._retry,
            may_start=self._may_start_record,
            outcome=self.outcome,
            log_fields=self.fields,
            runs=services.runs,
        )
        interval = min(queue.visibility_timeout_s / 3, settings.keeper_interval_s)  # as the batch keepers'
        self.receiver = Receiver(
            self.sqs, queue, self.clock, self._retry, self._receive_size, interval, self.batches.give_back, self.fields
        )
        self.growth = GrowthWatch(
            queue=queue,
            sqs=self.sqs,
            invoker=services.invoker,
            scale_up_function=services.scale_up_function if settings.depth_reads else None,
            count_loops=lambda: services.tokens.count(step.queue_url),
            clock=self.clock,
            log_fields=self.fields,
        )

    # -- the invocation ------------------------------------------------------------------------------

    def run(self) -> Outcome:
        try:
            return self._run()
        except Exception as exc:  # a failure nobody foresaw: say so, and let restart decide after a back-off
            detail = f"{type(exc).__name__}: {exc}"
            log("error", "unexpected_error", traceback="".join(traceback.format_exception(exc))[-4000:], **self.fields)
            return self._stop_for_good("unexpected_error", detail)

    def _run(self) -> Outcome:
        self.started_with_s = self.deadline.remaining_s()
        lease = self._claim()
        if lease is None:
            return self._end()
        self.lease = lease
        self.outcome.generation = lease.generation
        self.fields["generation"] = lease.generation
        try:
            dispatcher = self._dispatcher()
            deletes = BackgroundDelete(log_fields=self.fields)
            try:
                self._work(lease, dispatcher, deletes)
                # The last batch's delete (its RetriesExhausted is handled below), for as long as the time
                # allows: the next step's invoke comes first (a delete left undone costs duplicates only).
                if not deletes.wait(timeout_s=self.deadline.remaining_s() - INVOKE_CALL_WORST_S):
                    log("warning", "delete_abandoned", remaining_s=self.deadline.remaining_s(), **self.fields)
            finally:
                deletes.close()
                dispatcher.close()
                self.batches.close()
                self.receiver.close(self.deadline.remaining_s() - INVOKE_CALL_WORST_S)
            if lease.lost is not None:
                self.outcome.reason = lease.lost.reason
                return self._end()
            if lease.retiring and share_left(self.rate, self.clock):
                self.outcome.reason = "draining"  # the time ran out first: the next step spends the rest
            elif lease.retiring:
                return self._retire()
        except (QueueUnavailable, HandlerImportError, InvocationTooShort) as exc:
            # Retrying cannot fix these: stop without recursing (no hot loop) and leave the reason on the
            # row; restart revives the row after a back-off, so a fix is picked up.
            return self._stop_for_good(exc.reason, str(exc))
        except RetriesExhausted as exc:
            # A transient error never ends a loop: the next step starts afresh.
            self.outcome.reason = "transient_errors"
            log("warning", "handing_over", what=exc.what, error=str(exc.cause), **self.fields)
        self._recurse(self.step.next())
        return self._end()

    def _claim(self) -> Lease | None:
        claim_id = uuid.uuid4().hex
        sent_at = self.clock.monotonic()
        try:
            claimed = retry_transient(
                lambda: self.services.tokens.claim(
                    self.step.queue_url,
                    self.step.token,
                    loop_id=self.step.loop_id,
                    generation=self.step.generation,
                    claim_id=claim_id,
                    inherited_claim_ids=self.step.claim_ids,
                    now_ms=epoch_ms(self.clock),
                ),
                what="claim",
                clock=self.clock,
                rand=self.services.rand,
                deadline=self.deadline,
                reserve_s=RECURSE_RESERVE_S,
                attempt_s=TOKEN_CALL_WORST_S,
                fields=self.fields,
            )
        except TokenLost as lost:
            # A duplicate delivery, a deleted or a taken-over row: not an error, someone else has it.
            self.outcome.reason = lost.reason
            return None
        except RetriesExhausted as exc:
            # Maybe not claimed, maybe claimed with every answer lost: the same step, carrying our claim id,
            # is valid either way for a fresh invocation (and only for one: its claim moves the id on).
            self.outcome.reason = "transient_errors"
            log("warning", "handing_over", what=exc.what, error=str(exc.cause), **self.fields)
            self._recurse(self.step.handed_over(claim_id))
            return None
        return Lease(
            store=self.services.tokens,
            step=self.step,
            claimed=claimed,
            confirmed_at=sent_at,
            heartbeat_s=self.settings.heartbeat_s,
            clock=self.clock,
            rand=self.services.rand,
            log_fields=self.fields,
            report_early=bool(self.queue.limits),  # only the limit cap reads the figures soon
        )

    def _dispatcher(self) -> Dispatcher:
        """The queue's target, paced by this loop's turns when the queue keeps a rate limit (its own, or
        its shared downstream's: docs/downstream.md)."""
        if self.queue.limits:
            self.rate = turns_for(
                self.queue.limits,
                self.services.shared or store_beside(self.services.tokens),
                queue=self.queue.key,
                token=self.step.token,
                loop_id=self.step.loop_id,
                generation=self.step.generation,  # a revived loop's is higher: it takes over its predecessor's lane
                weight=self.queue.weight,
                priority=self.queue.priority,
                clock=self.clock,
                log_fields=self.fields,
            )
        return Dispatcher(
            make_target(self.queue, region=self.services.region),
            per_record=self.queue.per_record,
            concurrency=self.queue.concurrency,
            rate=self.rate,
            arn=self.arn,
            region=self.services.region,
            clock=self.clock,
            log_fields=self.fields,
        )

    def _work(self, lease: Lease, dispatcher: Dispatcher, deletes: BackgroundDelete) -> None:
        if not self._stopping(lease) and self._poll_wait_s() is None:
            if self._spare_s(self.started_with_s) < 1:  # the function's timeout itself is too short
                raise InvocationTooShort(self.started_with_s, self.queue.batch_budget_s)
            # The claim's retries used up the time a batch needed: not a configuration error, and no reason
            # to stop; the next step starts with a whole invocation.
            self.outcome.reason = "claimed_late"
            log("warning", "claimed_late", remaining_s=round(self.deadline.remaining_s(), 3), **self.fields)
            return
        while not self._stopping(lease):
            wait = dispatcher.ready_in_s()
            spare = self.deadline.remaining_s() - self.queue.batch_budget_s - RECURSE_RESERVE_S
            if wait > 0 and spare > 0:
                # Not our turn yet (rate share, or a downstream's Retry-After): receive only when the
                # messages can be sent, and never sleep into the time a batch and the recursion need.
                self.receiver.give_back_ahead(spare)  # what was received ahead would wait out the sleep invisible
                dispatcher.sleep(min(wait, spare))
            wait_s = self._poll_wait_s()
            if wait_s is None:
                return
            lease.heartbeat_if_due(deadline=self.deadline, reserve_s=RECURSE_RESERVE_S)
            if self._stopping(lease):
                return
            # FIFO: a retry of a receive whose answer was lost gets the same messages (poller/loop/fifo.py).
            attempt_id = uuid.uuid4().hex if self.queue.ref.fifo else None
            messages, received_at = self.receiver.receive(wait_s, attempt_id)  # maybe received ahead
            if self.rate is not None:
                self.rate.received(len(messages), self._receive_size())  # a full receive: a backlog (the lane's demand)
            try:
                self._wait_for_delete(deletes)  # the previous batch's: if it failed, hand over before touching these
            except Exception:
                self.batches.give_back(messages)
                raise
            if not messages:
                continue
            # A long poll may have outlasted the heartbeat interval: confirm ownership before working.
            try:
                lease.heartbeat_if_due(
                    deadline=self.deadline, reserve_s=self.queue.handler_timeout_s + RECURSE_RESERVE_S
                )
            except RetriesExhausted:
                self.batches.give_back(messages)
                raise
            if self._stopping(lease):
                self.batches.give_back(messages)
                return
            full = len(messages) >= self._receive_size()
            self.receiver.start_ahead(
                full=full and (self.rate is None or self.rate.turns_come_often()),
                time_allows=self._spare_s(self.deadline.remaining_s() - self.queue.batch_budget_s) >= 1,
            )
            result = self.batches.process(messages, dispatcher, lease, received_at)
            self.growth.after_batch(full=full)
            # The delete runs while the next receive waits; its failure comes out at the wait after that receive.
            deletes.submit(partial(self.batches.delete_done, messages, result, started=received_at))
            if self.queue.ref.fifo:
                self._wait_for_delete(deletes)  # the group stays locked until its batch is deleted: no receive before

    def _wait_for_delete(self, deletes: BackgroundDelete) -> None:
        """Wait for the batch's delete in flight while the recursion reserve allows; past that, hand over."""
        if not deletes.wait(timeout_s=self.deadline.remaining_s() - RECURSE_RESERVE_S):
            raise RetriesExhausted("delete", TimeoutError("a delete outlasted the time left before the reserve"), 1)

    def _stopping(self, lease: Lease, *, may_drain: bool = True) -> bool:
        return must_stop(lease, self.rate, self.clock, self.fields, may_drain=may_drain)

    def _receive_size(self) -> int:
        """``batch_size``; under a rate limit what the loop's turns pay for soon (coordinator.Turns)."""
        if self.rate is None:
            return self.queue.batch_size
        return self.rate.receive_limit(self.queue.batch_size, per_record=self.queue.per_record)

    def _may_start_record(self) -> bool:
        lease = self.lease
        return (
            lease is not None
            and not self._stopping(lease, may_drain=False)
            and self.deadline.remaining_s() >= self.queue.handler_timeout_s + RECURSE_RESERVE_S
        )

    def _poll_wait_s(self) -> int | None:
        """Seconds of long poll that still leave the batch's budget and the recursion reserve (under a share
        briefly, to see whether the queue ran dry: Turns.poll_s), or None when the time is up."""
        spare = self._spare_s(self.deadline.remaining_s())
        if spare < 1:
            return None
        return min(self.queue.wait_time_s, int(spare), self.rate.poll_s() if self.rate else self.queue.wait_time_s)

    def _spare_s(self, remaining_s: float) -> float:
        """Of ``remaining_s``, what is left for a long poll after the batch's budget and the recursion reserve."""
        return remaining_s - self.queue.batch_budget_s - RECURSE_RESERVE_S

    def _retry(self, call: Any, what: str, attempt_s: float = 0.0) -> Any:
        """The loop's retry policy; ``attempt_s``: the worst case of one attempt (a retry starts only if
        it fits before the recursion reserve). The default is for the background delete and the runs'
        counting writes, whose wait the loop bounds itself (:meth:`_wait_for_delete`)."""
        return retry_transient(
            call,
            what=what,
            clock=self.clock,
            rand=self.services.rand,
            deadline=self.deadline,
            reserve_s=RECURSE_RESERVE_S,
            attempt_s=attempt_s,
            fields=self.fields,
        )

    def _recurse(self, step: LoopStep) -> None:
        try:
            retry_transient(
                lambda: self.services.invoker.invoke_async(self.function, step.payload()),
                what="recurse",
                clock=self.clock,
                rand=self.services.rand,
                backoff=RECURSION_BACKOFF,
                deadline=self.deadline,
                attempt_s=INVOKE_CALL_WORST_S,
                fields=self.fields,
            )
        except Exception as exc:
            # The row keeps its loop_id and heartbeat: restart finds it stale and revives it.
            self.outcome.reason = "recursion_failed"
            log("error", "recursion_failed", function=self.function, error=str(exc), **self.fields)
            return
        self.outcome.recursed = True

    def _retire(self) -> Outcome:
        """Scale-down asked this loop to stop: delete the row, unless a scale-up took the request back
        meanwhile; then the loop goes on (its next claim decides, as always)."""
        try:
            released = self._retry(
                lambda: self.services.tokens.release(
                    self.step.queue_url, self.step.token, loop_id=self.step.loop_id, if_retiring=True
                ),
                "release",
                TOKEN_CALL_WORST_S,
            )
        except RetriesExhausted as exc:
            log("warning", "handing_over", what=exc.what, error=str(exc.cause), **self.fields)
            released = False
        if released:
            self.outcome.reason = "retired"
            if self.rate is not None:
                self.rate.leave()  # its share goes to the loops that stay, without waiting for it to expire
        else:
            self.outcome.reason = "retire_withdrawn"
            self._recurse(self.step.next())
        return self._end()

    def _stop_for_good(self, reason: str, error: str) -> Outcome:
        self.outcome.reason = reason
        self._record_error(error)
        return self._end(level="error", error=error)

    def _record_error(self, error: str) -> None:
        try:
            self.services.tokens.record_error(
                self.step.queue_url,
                self.step.token,
                loop_id=self.step.loop_id,
                error=error,
                now_ms=epoch_ms(self.clock),
            )
        except Exception as exc:
            log("warning", "record_error_failed", error=repr(exc), **self.fields)

    def _end(self, *, level: str = "info", **extra: object) -> Outcome:
        # After the recursion, with what time is left: ids the last batch deleted leave the runs' pending
        # sets (skipped, they only cost bytes on the run's row until a later step forgets them).
        if self.batches.runs is not None and self.deadline.remaining_s() >= DYNAMODB_CALL_WORST_S:
            self.batches.runs.flush()
        self.outcome.heartbeats = self.lease.heartbeats if self.lease else 0
        self.outcome.loop_counts = self.rate.counts if self.rate else 0
        # Only _stop_for_good ends at level error: that is a loop stopped for good (counted only then).
        metrics = {RECURSIONS: int(self.outcome.recursed), LOOPS_STOPPED: 1 if level == "error" else None}
        fields = {**self.outcome.as_dict(), **self.fields, **extra}
        emf = with_metrics(fields, metrics, timestamp_ms=epoch_ms(self.clock), enabled=self.settings.metrics)
        log(level, "loop_end", **emf)
        return self.outcome
