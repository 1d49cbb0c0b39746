"""While a handler runs: background threads that keep its messages invisible and its token alive, one for
each, so that a slow DynamoDB cannot delay a visibility extension (nor a slow SQS a heartbeat).

Each thread lives for the whole invocation and is armed for one batch at a time (``keeping``): starting and
joining a thread per batch cost a quarter of a millisecond of CPU, a fifth of the loop's own work per batch
(docs/benchmarks.md). Arming and disarming wake nobody: an idle keeper looks again every interval by itself,
which finds a tick armed since by its due time (one interval after arming), so a batch costs the keeper two
lock round trips and no thread switch."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from poller.logs import log
from poller.timing import KEEPER_JOIN_S

THREAD_NAME = "sqs-loops-keeper"
"""The keeper threads' name (the sandbox's fault injection tells a loop's threads by name)."""


class KeeperThread:
    """Calls the armed ``tick`` every ``interval_s`` seconds while a ``keeping`` block runs. A tick that
    raises is logged and the keeper goes on: a slow handler must not lose its messages to one failed call.
    The thread starts with the first batch (an invocation that receives nothing starts none) and ends at
    :meth:`close`."""

    def __init__(self, *, interval_s: float, log_fields: dict[str, object]):
        self.interval_s = interval_s
        self.log_fields = log_fields
        self._cond = threading.Condition()
        self._tick: Callable[[], None] | None = None
        self._due = 0.0  # time.monotonic() of the armed tick's next call
        self._busy = False  # a tick is running (outside the lock)
        self._closed = False
        self._thread: threading.Thread | None = None

    @contextmanager
    def keeping(self, tick: Callable[[], None]) -> Iterator[None]:
        """``tick`` every ``interval_s`` (the first after one interval) until the block ends; the end waits
        at most KEEPER_JOIN_S for a tick in flight (its client's timeouts bound it)."""
        with self._cond:
            if self._thread is None:
                # In the starter's context (contextvars), as the background delete's jobs: a tracer's, or the
                # sandbox's notion of which invocation this is, carries over.
                context = contextvars.copy_context()
                self._thread = threading.Thread(target=context.run, args=(self._run,), name=THREAD_NAME, daemon=True)
                self._thread.start()
            self._tick = tick
            self._due = time.monotonic() + self.interval_s
            # No notify: the thread's wait ends within an interval of now (an idle wait lasts one interval,
            # an armed one ends at an earlier batch's due), before this tick's due.
        try:
            yield
        finally:
            self._disarm()

    def _disarm(self) -> None:
        with self._cond:
            self._tick = None  # the thread, waking at this tick's due, finds none and waits idle
            # A tick of this batch must not run after its end (it would undo a give-back's visibility 0):
            # wait for the one in flight, but only so long.
            left = self._busy and not self._cond.wait_for(lambda: not self._busy, KEEPER_JOIN_S)
        if left:
            log("warning", "keeper_left_running", **self.log_fields)

    def close(self) -> None:
        """End the thread (at the end of the invocation); a tick still in flight is not waited for."""
        with self._cond:
            self._closed = True
            self._tick = None
            self._cond.notify_all()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                tick = self._tick
                # Idle: look again after an interval (arming does not wake the thread, see keeping).
                wait_s = self.interval_s if tick is None else self._due - time.monotonic()
                if tick is None or wait_s > 0:
                    self._cond.wait(wait_s)
                    continue
                self._due = time.monotonic() + self.interval_s
                self._busy = True
                self._cond.release()
                try:
                    tick()
                except Exception as exc:
                    log("warning", "keeper_tick_failed", error=repr(exc), **self.log_fields)
                finally:
                    self._cond.acquire()
                    self._busy = False
                    self._cond.notify_all()
