"""One job at a time in the background: the loop hands a batch's delete here and goes on to its next
receive, so the two calls overlap (docs/benchmarks.md: the delete was 14 % of a busy loop's time).

At most one job is in flight: handing over the next one, or leaving the invocation, waits for it first (for
as long as the invocation's time allows), and an error it raised comes out there, in the loop's own thread.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from poller.logs import log

THREAD_NAME = "sqs-loops-delete"
"""The name of the background thread (the sandbox's fault injection tells a loop's threads by name)."""


class BackgroundDelete:
    """Runs ``submit``-ted jobs one after another on one thread, at most one running ahead of the caller.
    Close it (``with`` or :meth:`close`) to wait for the last job and end the thread."""

    def __init__(self, *, log_fields: dict[str, object]) -> None:
        self.log_fields = log_fields
        self._pool: ThreadPoolExecutor | None = None  # made on first use: an idle invocation needs none
        self._pending: Future[None] | None = None

    def submit(self, job: Callable[[], None]) -> None:
        """Wait for the job in flight (raising its error, if it failed), then start ``job``."""
        self.wait()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix=THREAD_NAME)
        # In the caller's context (contextvars): what a tracer, or the sandbox's fault injection, knows the
        # invocation by carries over to the job's thread.
        self._pending = self._pool.submit(contextvars.copy_context().run, job)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the job in flight, at most ``timeout_s`` seconds (None: as long as it takes); its error,
        if any, is raised here (once). False if it is still running (it stays in flight)."""
        pending = self._pending
        if pending is None:
            return True
        try:
            pending.result(None if timeout_s is None else max(0.0, timeout_s))
        except FutureTimeout:
            return False
        finally:
            if pending.done():
                self._pending = None
        return True

    @property
    def busy(self) -> bool:
        """A job is still in flight (one that outlasted the time a wait allowed)."""
        return self._pending is not None and not self._pending.done()

    def close(self) -> None:
        """End the thread without waiting for a job still in flight (the time for it is up: its messages come
        back after their visibility timeout); an ``Exception`` a finished job failed with is logged, not
        raised (the caller is leaving by another way already); a ``BaseException`` (a dying invocation) still
        comes out."""
        try:
            if not self.busy:
                self.wait()
        except Exception as exc:
            log("warning", "background_job_failed", error=repr(exc), **self.log_fields)
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
                self._pool = None
