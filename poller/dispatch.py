"""Handing one received batch to the queue's target: in one call (the SQS trigger's way), or record by
record on up to ``concurrency`` threads, each call paid for by the loop's rate share when the queue has a
``rate_limit`` (docs/downstream.md).

Record by record, a record is not started once the lease is lost or the time is up: it is returned
(made visible again at once) instead, so a fenced loop stops spending the rate limit within one record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from poller.rate import RateShare
from poller.records import Message, esm_record
from poller.targets import Failure, Failures, Target


@dataclass
class BatchResult:
    """``failures`` by message id; ``returned``: records never dispatched (to be made visible again)."""

    failures: dict[str, Failure] = field(default_factory=dict)
    returned: list[Message] = field(default_factory=list)


class Dispatcher:
    """One loop invocation's way of delivering batches; owns its thread pool (close it at the end)."""

    def __init__(
        self,
        target: Target,
        *,
        per_record: bool,
        concurrency: int,
        rate: RateShare | None,
        arn: str,
        region: str,
        log_fields: dict[str, object],
    ):
        self.target = target
        self.per_record = per_record
        self.concurrency = concurrency
        self.rate = rate
        self.arn = arn
        self.region = region
        self.log_fields = log_fields
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="sqs-loops-record") if concurrency > 1 else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def run(self, messages: Sequence[Message], context: Any, *, may_start: Callable[[], bool]) -> BatchResult:
        """Deliver ``messages``; ``may_start()`` is asked before each record-by-record call."""
        records = [esm_record(m, arn=self.arn, region=self.region) for m in messages]
        if not self.per_record:
            if self.rate is not None:
                self.rate.acquire(len(records))
            return BatchResult(failures=dict(self.target.send({"Records": records}, context, self.log_fields)))
        if self._pool is None:
            outcomes = [self._one(record, context, may_start) for record in records]
        else:
            outcomes = list(self._pool.map(lambda r: self._one(r, context, may_start), records))
        result = BatchResult()
        for message, outcome in zip(messages, outcomes, strict=True):
            if outcome is None:
                result.returned.append(message)
            else:
                result.failures.update(outcome)
        return result

    def _one(self, record: dict[str, Any], context: Any, may_start: Callable[[], bool]) -> Failures | None:
        """One record: wait for its turn, then send it, unless the loop may no longer start work (None)."""
        if not may_start():
            return None
        if self.rate is not None:
            self.rate.acquire(1)
            if not may_start():  # the wait may have crossed a lost lease or the deadline
                return None
        return self.target.send({"Records": [record]}, context, self.log_fields)
