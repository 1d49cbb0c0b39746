"""A loop that keeps receiving full batches asks for help between restarts (docs/scaling.md#two-paths).

Now and then (at most every :data:`GROWTH_CHECK_S` seconds, and only after :data:`GROWTH_CHECK_BATCHES`
full batches in a row) it reads the queue's depth, applies the queue's steps to it, and when they want
more loops than the queue has, invokes scale_up asynchronously with a growth request. scale_up reads the
depth again itself; this loop's numbers are only a reason to look.

Cost, at full backlog: one GetQueueAttributes per check, so with 10-message batches at 2 a second one
call per 120 messages (0.0083 a message); a token count and an Invoke only when the wanted count rose
above what this loop already saw, at most once per step per invocation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from poller.clock import Clock
from poller.config import QueueConfig
from poller.config.scaling import depth_loops
from poller.growth_request import growth_request
from poller.lease.recursion import Invoker
from poller.logs import log
from poller.sqs.client import QueueClient
from poller.sqs.depth import DEPTH_ATTRIBUTES, depth_of

GROWTH_CHECK_S = 6.0
"""Seconds between two depth checks of one loop: growth within 10 s of a backlog (a check, scale_up and a
loop start), and at 20 messages a second at most one call per 120 messages (calls per message <= 0.21)."""

GROWTH_CHECK_BATCHES = 2
"""Full batches in a row before a check: one full batch is chance, two are a backlog."""


class GrowthWatch:
    """Called after every batch; ``scale_up_function`` None (not deployed, or the alarm-only path): never
    checks. Failures are logged and forgotten: asking for help never ends a loop."""

    def __init__(
        self,
        *,
        queue: QueueConfig,
        sqs: QueueClient,
        invoker: Invoker,
        scale_up_function: str | None,
        count_loops: Callable[[], int],
        clock: Clock,
        log_fields: dict[str, Any],
    ):
        self.queue, self.sqs, self.invoker = queue, sqs, invoker
        self.function = scale_up_function
        self.count_loops = count_loops
        self.clock = clock
        self.fields = log_fields
        self.full_in_a_row = 0
        self.checked_at = clock.monotonic()
        self.seen = 1  # this loop exists: a count at or below this needs nobody's help
        self.checks = 0
        self.requests = 0

    def after_batch(self, *, full: bool) -> None:
        if self.function is None:
            return
        self.full_in_a_row = self.full_in_a_row + 1 if full else 0
        if self.full_in_a_row < GROWTH_CHECK_BATCHES or self.clock.monotonic() - self.checked_at < GROWTH_CHECK_S:
            return
        self.checked_at = self.clock.monotonic()
        self.checks += 1
        try:
            self._check()
        except Exception as exc:  # the next check, or restart within a minute, tries again
            log("warning", "growth_check_failed", error=repr(exc), **self.fields)

    def _check(self) -> None:
        depth = depth_of(self.sqs.attributes(DEPTH_ATTRIBUTES))
        wanted = depth_loops(self.queue, depth)
        if wanted <= self.seen:
            return
        live = self.count_loops()
        self.seen = wanted
        if wanted <= live:
            return
        assert self.function is not None
        request = growth_request(
            self.sqs.queue_url, loop_id=str(self.fields.get("loop_id")), depth=depth, wanted=wanted
        )
        self.invoker.invoke_async(self.function, request)
        self.requests += 1
        log("info", "growth_requested", depth=depth, wanted=wanted, loops=live, **self.fields)
