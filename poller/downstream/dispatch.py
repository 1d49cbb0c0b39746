"""Handing one received batch to the queue's target: in one call (the SQS trigger's way), or record by
record on up to ``concurrency`` threads, each call waiting for the loop's turn when the queue keeps a rate
limit (its own ``rate_limit`` or a shared downstream's: :mod:`poller.downstream.coordinator`). A batch that
finds no turn in time is returned, never sent (docs/downstream.md).

Record by record, a record is not started once the lease is lost or the time is up: it is returned
(made visible again at once) instead, so a fenced loop stops spending the rate limit within one record.

A downstream that answers with a Retry-After (an HTTP 429 or 503) pauses this loop's calls for that long,
at most :data:`PAUSE_CAP_S` at a time; the failed record itself waits the whole Retry-After.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from poller.clock import Clock
from poller.downstream.coordinator import Turns
from poller.logs import log
from poller.sqs.records import Message, esm_record
from poller.targets.base import Failure, Failures, Target

PAUSE_CAP_S = 5.0
"""The longest one Retry-After pauses a loop's calls: long enough to relieve the downstream, short enough
that a loop does not sit out a long Retry-After while the time of its invocation runs down."""


@dataclass
class BatchResult:
    """``failures`` by message id; ``returned``: records never dispatched (to be made visible again);
    ``calls_ms``: how long each call to the target took (milliseconds); ``waited_ms``: how long the loop
    waited for its rate share or a downstream's pause since the previous batch (milliseconds of the loop's
    time: records in parallel that wait together count once, see :meth:`Dispatcher.run`)."""

    failures: dict[str, Failure] = field(default_factory=dict)
    returned: list[Message] = field(default_factory=list)
    calls_ms: list[float] = field(default_factory=list)
    waited_ms: float = 0.0


class Dispatcher:
    """One loop invocation's way of delivering batches; owns its thread pool (close it at the end)."""

    def __init__(
        self,
        target: Target,
        *,
        per_record: bool,
        concurrency: int,
        rate: Turns | None,
        arn: str,
        region: str,
        clock: Clock,
        log_fields: dict[str, object],
    ):
        self.target = target
        self.clock = clock
        self.per_record = per_record
        self.concurrency = concurrency
        self.rate = rate
        self.arn = arn
        self.region = region
        self.log_fields = log_fields
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="sqs-loops-record") if concurrency > 1 else None
        self._resume_at = -math.inf  # monotonic time before which no call starts (a Retry-After)
        self._lock = threading.Lock()
        self._calls_ms: list[float] = []  # this batch's target calls (the batch's metrics)
        self._waited_s = 0.0  # waits for a turn since the last batch was handed over
        self._turn_waits: list[tuple[float, float]] = []  # a parallel batch's records' waits for turns (monotonic)

    def ready_in_s(self) -> float:
        """Seconds until the next call may start: this loop's rate turn or a downstream's pause (0: now)."""
        wait = self._resume_at - self.clock.monotonic()
        return max(0.0, wait, self.rate.ready_in_s() if self.rate is not None else 0.0)

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` for a turn before a receive; counted in the next batch's ``waited_ms``."""
        self.clock.sleep(seconds)
        with self._lock:
            self._waited_s += seconds

    def close(self) -> None:
        """End the record threads without waiting: a batch's records are all done by the time ``run``
        returns, and a record still running after an error that ended the batch must not hold up the
        hand-over (its outcome is lost; its message comes back after its visibility timeout)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def run(self, messages: Sequence[Message], context: Any, *, may_start: Callable[[], bool]) -> BatchResult:
        """Deliver ``messages``; ``may_start()`` is asked before each record-by-record call."""
        records = [esm_record(m, arn=self.arn, region=self.region) for m in messages]
        if not self.per_record:
            if not self._wait_turn(len(records), may_start):
                return self._timed(BatchResult(returned=list(messages)))
            return self._timed(BatchResult(failures=dict(self._send({"Records": records}, context))))
        if self._pool is None:
            outcomes = self._in_order(records, context, may_start)
        else:
            began = self.clock.monotonic()
            outcomes = list(self._pool.map(lambda r: self._one(r, context, may_start), records))
            self._count_parallel_wait(began)
        result = BatchResult()
        for message, outcome in zip(messages, outcomes, strict=True):
            if outcome is None:
                result.returned.append(message)
            else:
                result.failures.update(outcome)
        return self._timed(result)

    def _timed(self, result: BatchResult) -> BatchResult:
        """Hand this batch's call times and waits to its result, and start counting afresh."""
        with self._lock:
            result.calls_ms, self._calls_ms = self._calls_ms, []
            result.waited_ms, self._waited_s = self._waited_s * 1000, 0.0
        return result

    def _wait_turn(self, units: int, may_start: Callable[[], bool]) -> bool:
        """Wait out a downstream's pause, then this loop's turn for ``units`` messages (False: none came)."""
        started = self.clock.monotonic()
        self._wait_for_pause()
        turn_from = self.clock.monotonic()
        got = self.rate is None or self.rate.acquire(units, may_start)
        ended = self.clock.monotonic()
        if self._pool is None or not self.per_record:  # records in parallel: their batch's wait is counted whole
            self._count_wait(ended - started, for_turns_s=ended - turn_from)
        else:
            with self._lock:
                self._turn_waits.append((turn_from, ended))
        return got

    def _count_wait(self, seconds: float, *, for_turns_s: float) -> None:
        """For the batch's ``waited_ms`` (the loop's pace), and the part spent waiting for turns for its
        shares (whether they hold the loop back; a downstream's pause does not)."""
        with self._lock:
            self._waited_s += seconds
        if self.rate is not None:
            self.rate.waited(for_turns_s)

    def _count_parallel_wait(self, began: float) -> None:
        """The wait of a batch whose records ran in parallel (since ``began``, monotonic): the part of its
        time that its calls, run unwaited on ``concurrency`` threads, would not have filled. Not the
        threads' waits summed: four threads waiting side by side are one loop waiting, and a sum capped at
        the batch's time told the limit cap that a loop waiting 25 % of its time waited all of it (the
        demo's stage 3 measured 490 records a second unwaited instead of 40, and kept one loop of the four
        it needed)."""
        wall_s = self.clock.monotonic() - began
        with self._lock:
            calls = len(self._calls_ms)
            rounds = math.ceil(calls / self.concurrency)  # an unwaited batch's calls run in this many waves
            work_s = sum(self._calls_ms) / 1000 * rounds / calls if calls else 0.0
            waits, self._turn_waits = sorted(self._turn_waits), []
        # The shares are told the time some record waited for a turn (its threads' waits side by side count
        # once): not the batch's time its calls did not fill, which also counts a handler's uneven durations
        # (the demo's stage 2, 0.2-1.4 s a record, looked held back by its share and announced a backlog).
        held_s, reach = 0.0, -math.inf
        for start, end in waits:
            held_s += max(0.0, end - max(start, reach))
            reach = max(reach, end)
        self._count_wait(max(0.0, wall_s - work_s), for_turns_s=held_s)

    def _in_order(
        self, records: Sequence[dict[str, Any]], context: Any, may_start: Callable[[], bool]
    ) -> list[Failures | None]:
        """One after another. On a FIFO queue, once a record of a message group fails (or is not sent), the
        group's later records in the batch are not sent either but returned, so the group keeps its order:
        SQS hands them out again only after the failed one."""
        held: set[str] = set()
        outcomes: list[Failures | None] = []
        for record in records:
            group = record["attributes"].get("MessageGroupId")
            if group is not None and group in held:
                outcomes.append(None)
                continue
            outcome = self._one(record, context, may_start)
            if group is not None and (outcome is None or outcome):
                held.add(group)
            outcomes.append(outcome)
        return outcomes

    def _one(self, record: dict[str, Any], context: Any, may_start: Callable[[], bool]) -> Failures | None:
        """One record: wait for its turn, then send it, unless the loop may no longer start work (None)."""
        if not may_start():
            return None
        # The wait may have crossed a lost lease or the deadline.
        if not self._wait_turn(1, may_start) or not may_start():
            return None
        return self._send({"Records": [record]}, context)

    def _send(self, event: dict[str, Any], context: Any) -> Failures:
        started = self.clock.monotonic()
        with self.rate.calling(len(event["Records"])) if self.rate is not None else nullcontext():
            failures = self.target.send(event, context, self.log_fields)
        took_ms = (self.clock.monotonic() - started) * 1000
        with self._lock:
            self._calls_ms.append(took_ms)
        asked = [f.retry_after_s for f in failures.values() if f.retry_after_s]
        if asked:
            pause = min(max(asked), PAUSE_CAP_S)
            with self._lock:
                self._resume_at = max(self._resume_at, self.clock.monotonic() + pause)
            log("info", "downstream_pause", pause_s=round(pause, 3), retry_after_s=max(asked), **self.log_fields)
        return failures

    def _wait_for_pause(self) -> None:
        wait = self._resume_at - self.clock.monotonic()
        if wait > 0:
            self.clock.sleep(wait)
