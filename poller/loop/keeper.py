"""While a handler runs: a background thread that keeps its messages invisible and the token alive."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

from poller.logs import log

THREAD_NAME = "sqs-loops-keeper"
"""The keeper thread's name (the sandbox's fault injection tells a loop's threads by name)."""


class KeeperThread:
    """Calls ``tick`` every ``interval_s`` seconds until the ``with`` block ends. A tick that raises is
    logged and the keeper goes on: a slow handler must not lose its messages to one failed call."""

    def __init__(self, tick: Callable[[], None], *, interval_s: float, log_fields: dict[str, object]):
        self.tick = tick
        self.interval_s = interval_s
        self.log_fields = log_fields
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)

    def __enter__(self) -> KeeperThread:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except Exception as exc:
                log("warning", "keeper_tick_failed", error=repr(exc), **self.log_fields)
