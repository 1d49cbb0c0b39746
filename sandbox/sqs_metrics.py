"""The SQS metrics CloudWatch would hold, published the way SQS publishes them (docs/operations.md):

- one datapoint per queue per period (a minute on AWS), sampled when the period is collected;
- visible only ``lag_s`` after it is sampled (CloudWatch shows a minute's datapoint after the minute);
- a queue that has been inactive (no messages, and no API action touching it, GetQueueAttributes
  included) for ``dormant_after_s`` stops reporting (six hours on AWS), and once active again it reports
  only after ``resume_after_s`` (up to 15 minutes on AWS; SQS developer guide, "Available CloudWatch
  metrics for Amazon SQS").

Activity is seen at moto's side, so calls from every client count (threads and containers alike); the
stand-in's own sampling reads moto's queues directly and touches nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

VISIBLE = "ApproximateNumberOfMessagesVisible"
NOT_VISIBLE = "ApproximateNumberOfMessagesNotVisible"
DELAYED = "ApproximateNumberOfMessagesDelayed"
METRICS = (VISIBLE, NOT_VISIBLE, DELAYED)

_touches: dict[tuple[str, str], int] = {}  # (region, queue name) -> API actions on it so far
_installed = False


@dataclass(frozen=True)
class MetricTimings:
    """Seconds, compressed like the other sandbox periods (AWS / 20: a 60 s period is 3 s here)."""

    period_s: float = 3.0  # one datapoint per period: 60 s on AWS
    lag_s: float = 3.0  # a datapoint shows this long after its sample: about one period on AWS (assumed)
    dormant_after_s: float = 1080.0  # 6 h without activity on AWS
    resume_after_s: float = 45.0  # up to 15 min on AWS before a woken queue's metrics come back


def install_activity_hook() -> None:
    """Record every moto SQS action on a queue (moto's backend resolves the queue for each), in this
    process (idempotent)."""
    global _installed
    from moto.sqs.models import SQSBackend

    if _installed:
        return
    original = SQSBackend.get_queue

    def get_queue(self: Any, queue_name: str) -> Any:
        key = (self.region_name, queue_name)
        _touches[key] = _touches.get(key, 0) + 1  # a lost count under a race still says "touched"
        return original(self, queue_name)

    SQSBackend.get_queue = get_queue  # type: ignore[method-assign]
    _installed = True


@dataclass
class _Queue:
    last_active: float
    touches: int = 0  # API actions seen at the last sample
    dormant: bool = False
    resumes_at: float | None = None  # when a woken dormant queue reports again
    points: list[tuple[float, dict[str, float]]] = field(default_factory=list)  # (visible from, values)


class SqsMetrics:
    """Samples moto's queues once per period and answers, per metric, the latest visible datapoint."""

    def __init__(
        self, *, account: str, region: str, timings: MetricTimings, clock: Callable[[], float] = time.monotonic
    ):
        self.account, self.region, self.timings, self.clock = account, region, timings, clock
        self._queues: dict[str, _Queue] = {}
        self._lock = threading.Lock()

    def collect(self, queue_names: Iterable[str]) -> None:
        """One period's sample of every queue named (those the alarms read)."""
        from moto.sqs.models import sqs_backends

        backend = sqs_backends[self.account][self.region]
        now = self.clock()
        with self._lock:
            for name in set(queue_names):
                queue = backend.queues.get(name)
                if queue is None:
                    continue
                values = {
                    VISIBLE: float(queue.approximate_number_of_messages),
                    NOT_VISIBLE: float(queue.approximate_number_of_messages_not_visible),
                    DELAYED: float(queue.approximate_number_of_messages_delayed),
                }
                state = self._queues.setdefault(name, _Queue(last_active=now))
                touches = _touches.get((self.region, name), 0)
                if any(values.values()) or touches != state.touches:
                    state.last_active = now  # holds messages, or something touched it during the period
                state.touches = touches
                self._advance(state, now)
                if not state.dormant and (state.resumes_at is None or now >= state.resumes_at):
                    state.resumes_at = None
                    state.points.append((now + self.timings.lag_s, values))
                    del state.points[:-4]  # the latest few are all an alarm ever reads

    def _advance(self, state: _Queue, now: float) -> None:
        idle_for = now - state.last_active
        if not state.dormant and state.resumes_at is None and idle_for >= self.timings.dormant_after_s:
            state.dormant = True
            state.points.clear()  # CloudWatch has nothing newer than the last minute it reported
        elif state.dormant and idle_for < self.timings.dormant_after_s:
            state.dormant = False  # active again: its metrics come back only after the resume delay
            state.resumes_at = now + self.timings.resume_after_s

    def latest(self, queue_name: str, metric: str) -> float | None:
        """The newest datapoint CloudWatch would show now, or None (no data: dormant, or not yet published)."""
        now = self.clock()
        with self._lock:
            state = self._queues.get(queue_name)
            if state is None:
                return None
            visible = [values for shows_at, values in state.points if shows_at <= now]
            if not visible or state.dormant:
                return None
            return visible[-1].get(metric)

    def reporting(self, queue_name: str) -> bool:
        with self._lock:
            state = self._queues.get(queue_name)
            return state is not None and not state.dormant and state.resumes_at is None
