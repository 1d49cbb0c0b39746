"""A loop's receives, and receive ahead on standard queues: while the handler works on a full batch, the next
receive is already in flight (on one thread kept for the invocation), so a handler-bound loop never waits for
SQS (docs/loop.md, "Receive ahead").

What is received ahead is kept invisible by its own keeper until its turn (the batch's keeper takes over from
there), and is given back at once (visibility 0) when it will not be handled by this step: the lease lost, the
row retiring, the time short, or the downstream asking to wait (a Retry-After, a shared downstream's turn).
Not on FIFO queues (their batch is deleted before the next receive: poller/loop/fifo.py). Under a rate limit
only while the loop's turns come often (``Turns.turns_come_often``): the next batch then waits for no turn
of its own, and the share's slots that passed during a receive are no longer lost."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager
from functools import partial
from typing import Any

from poller.aws.clients import receive_worst_s
from poller.clock import Clock
from poller.config import QueueConfig
from poller.logs import log
from poller.loop.keeper import KeeperThread
from poller.sqs.client import QueueClient
from poller.sqs.records import Message

THREAD_NAME = "sqs-loops-receive"
"""The receive-ahead thread's name (the sandbox's fault injection tells a loop's threads by name)."""

AHEAD_WAIT_S = 1
"""The long poll of a receive ahead: it starts only after a full batch (a backlog, answered at once), and a
short one can be waited for and given back when the step stops. (A wait of 0 would sample only some of
SQS's servers and could come back empty with messages in the queue.)"""

WORTH_AHEAD_S = 0.005
"""A receive ahead starts only after a batch that took at least this long (from the receive to the next):
below, the handler leaves nothing to overlap, and handing the receive to another thread only costs CPU
(on loopback with a no-op handler: 0.93 of the hand-written loop with it, docs/benchmarks.md)."""

Retry = Callable[[Callable[[], Any], str, float], Any]


class Receiver:
    """``receive`` gives the next batch: the one received ahead if there is one, else a long poll now.
    ``size`` is how many messages a receive may ask for (the loop's rule, read at each receive)."""

    def __init__(
        self,
        sqs: QueueClient,
        queue: QueueConfig,
        clock: Clock,
        retry: Retry,
        size: Callable[[], int],
        keeper_interval_s: float,
        give_back: Callable[[list[Message]], None],
        log_fields: dict[str, object],
    ):
        self.sqs = sqs
        self.give_back = give_back
        self.queue = queue
        self.clock = clock
        self._retry = retry
        self.size = size
        self.fields = log_fields
        self.enabled = not queue.ref.fifo
        self._keeper = KeeperThread(interval_s=keeper_interval_s, log_fields=log_fields)
        self._pool: ThreadPoolExecutor | None = None  # made on the first receive ahead
        self._ahead: Future[list[Message]] | None = None
        self._kept: AbstractContextManager[None] | None = None
        self.extended_at = 0.0  # when the batch received ahead was received, or last made invisible again
        self.ahead_received = 0  # messages received ahead, for the end line and the tests
        self._batch_started: float | None = None  # when the batch in hand was handed to the handler
        self._last_batch_s = WORTH_AHEAD_S  # how long the last batch took (the first one: assumed worth it)

    def receive(self, wait_s: int, attempt_id: str | None) -> tuple[list[Message], float]:
        """The next batch, and when its visibility timeout last started (the batch's keeper counts from it).
        A receive ahead that failed for good raises its RetriesExhausted here, as a receive now would."""
        if self._batch_started is not None:
            self._last_batch_s = self.clock.monotonic() - self._batch_started
            self._batch_started = None
        if self._ahead is not None:
            messages = self._collect(None)
            self.ahead_received += len(messages)
            return messages, self.extended_at
        messages = self._retry(partial(self._receive, wait_s, None, attempt_id), "receive", receive_worst_s(wait_s))
        return messages, self.clock.monotonic()

    def start_ahead(self, *, full: bool, time_allows: bool) -> None:
        """While a batch is handled: receive the next one now, if the queue allows it and the batch in hand
        was full (a backlog; under a rate limit, with turns that come often: the caller says), the last batch
        took long enough to overlap, and the time allows one more batch after this one."""
        self._batch_started = self.clock.monotonic()
        worth = self._last_batch_s >= WORTH_AHEAD_S
        if not (self.enabled and full and worth and time_allows) or self._ahead is not None:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix=THREAD_NAME)
        job = partial(
            self._retry, partial(self._receive, AHEAD_WAIT_S, self.clock), "receive", receive_worst_s(AHEAD_WAIT_S)
        )
        # In the caller's context (contextvars), as the keeper's and the delete's threads.
        self._ahead = self._pool.submit(contextvars.copy_context().run, job)
        self._kept = self._keeper.keeping(self._tick)
        self._kept.__enter__()

    def give_back_ahead(self, timeout_s: float) -> None:
        """What was received ahead will not be handled here: make it visible again at once. A receive still
        in flight is waited for at most ``timeout_s`` (past that its messages come back after their
        visibility timeout: later, never lost)."""
        if self._ahead is None:
            return
        try:
            messages = self._collect(max(0.0, timeout_s))
        except FutureTimeout:
            log("warning", "receive_ahead_abandoned", **self.fields)
            return
        except Exception as exc:  # it failed: nothing was received, nothing to give back
            log("warning", "receive_ahead_failed", error=repr(exc), **self.fields)
            return
        if messages:
            self.give_back(messages)
            log("info", "receive_ahead_given_back", messages=len(messages), **self.fields)

    def close(self, timeout_s: float) -> None:
        """At the end of the step: give back what was received ahead, end the threads."""
        try:
            self.give_back_ahead(timeout_s)
        finally:
            self._keeper.close()
            if self._pool is not None:
                self._pool.shutdown(wait=False)
                self._pool = None

    def _collect(self, timeout_s: float | None) -> list[Message]:
        """The receive ahead's messages (waiting ``timeout_s`` at most: FutureTimeout past that, and it stays
        in flight); its keeper is disarmed first, so no extension runs after they are handed on."""
        assert self._ahead is not None
        try:
            messages = self._ahead.result(timeout_s)
        except FutureTimeout:  # still in flight: it stays pending, its keeper armed (a later wait may collect it)
            raise
        except BaseException:  # it failed: nothing to keep any more
            self._release()
            raise
        self._release()
        return messages

    def _release(self) -> None:
        self._ahead = None
        if self._kept is not None:
            self._kept.__exit__(None, None, None)
            self._kept = None

    def _receive(self, wait_s: int, stamp: Clock | None, attempt_id: str | None = None) -> list[Message]:
        messages = self.sqs.receive(
            max_messages=self.size(),
            wait_s=wait_s,
            visibility_timeout_s=self.queue.visibility_timeout_s,
            attempt_id=attempt_id,
        )
        if stamp is not None:
            self.extended_at = stamp.monotonic()
        return messages

    def _tick(self) -> None:
        """The keeper of a batch received ahead: every third of the visibility timeout, push it out again."""
        ahead = self._ahead
        if ahead is None or not ahead.done() or ahead.exception() is not None:
            return
        messages = ahead.result()
        if messages and self.clock.monotonic() - self.extended_at >= self.queue.visibility_timeout_s / 3:
            self.extended_at = self.clock.monotonic()
            self.sqs.change_visibility(messages, self.queue.visibility_timeout_s)
