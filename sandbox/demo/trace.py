"""The functions' log lines during a demo: kept in memory for the invariants, written to a file for the
record, so that the terminal shows the live view alone."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from poller.logs import LOGGER


class LogTrace(logging.Handler):
    """Keeps the functions' log lines the invariants need, with the time each was written."""

    EVENTS = frozenset(
        {
            "batch",
            "delete_failed",
            "processed_not_deleted",
            "batch_entry_failed",
            "transient_error",
            "handing_over",
            "run_notice_published",  # the run's notices (sandbox/demo/job_run.py)
            "reconciled",  # the control plane's decisions, with the limit cap's inputs (report.limit_cap)
            "scaled",
        }
    )

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self._lines: list[tuple[float, dict[str, Any]]] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = json.loads(record.getMessage())
        except ValueError:
            return
        if isinstance(line, dict) and line.get("event") in self.EVENTS:
            with self._guard:
                self._lines.append((record.created, line))

    def lines(self, event: str) -> list[tuple[float, dict[str, Any]]]:
        with self._guard:
            return [(t, line) for t, line in self._lines if line["event"] == event]


def _utc_formatter() -> logging.Formatter:
    formatter = logging.Formatter("%(asctime)s.%(msecs)03dZ %(message)s", datefmt="%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    return formatter


TIMESTAMPED = _utc_formatter()
"""A log file's line: the UTC time it was written, then the JSON line (what `sqs-loops logs --since` reads)."""


@contextmanager
def logs_to(path: Path) -> Iterator[None]:
    """The functions' JSON log lines go to a file, each after its UTC time, so that the terminal shows the
    live view alone."""
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(TIMESTAMPED)
    saved = (LOGGER.propagate, LOGGER.level)
    LOGGER.addHandler(handler)
    LOGGER.propagate = False
    LOGGER.setLevel(logging.INFO)
    try:
        yield
    finally:
        LOGGER.removeHandler(handler)
        handler.close()
        LOGGER.propagate, LOGGER.level = saved[0], saved[1]
