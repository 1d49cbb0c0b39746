"""While a handler runs: background threads that keep its messages invisible and its token alive, one for
each, so that a slow DynamoDB cannot delay a visibility extension (nor a slow SQS a heartbeat)."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from types import TracebackType

from poller.logs import log
from poller.timing import KEEPER_JOIN_S

THREAD_NAME = "sqs-loops-keeper"
"""The keeper threads' name (the sandbox's fault injection tells a loop's threads by name)."""


class KeeperThread:
    """Calls ``tick`` every ``interval_s`` seconds until the ``with`` block ends. A tick that raises is
    logged and the keeper goes on: a slow handler must not lose its messages to one failed call."""

    def __init__(self, tick: Callable[[], None], *, interval_s: float, log_fields: dict[str, object]):
        self.tick = tick
        self.interval_s = interval_s
        self.log_fields = log_fields
        self._stop = threading.Event()
        # In the starter's context (contextvars), as the background delete's jobs: a tracer's, or the
        # sandbox's notion of which invocation this is, carries over.
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._run,), name=THREAD_NAME, daemon=True)

    def __enter__(self) -> KeeperThread:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        # A tick caught in a slow call ends by itself (its client's timeouts bound it; the stop is set): the
        # batch does not wait for it.
        self._thread.join(KEEPER_JOIN_S)
        if self._thread.is_alive():
            log("warning", "keeper_left_running", **self.log_fields)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except Exception as exc:
                log("warning", "keeper_tick_failed", error=repr(exc), **self.log_fields)
