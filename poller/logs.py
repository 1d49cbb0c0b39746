"""Structured logs: one JSON object per event, on the ``sqs_loops`` logger."""

from __future__ import annotations

import json
import logging
import os

LOGGER = logging.getLogger("sqs_loops")
LOG_LEVEL_ENV = "SQS_LOOPS_LOG_LEVEL"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def log(level: str, event: str, **fields: object) -> None:
    """Emit ``{"level", "event", **fields}`` as one JSON line; values that JSON cannot hold become text."""
    number = _LEVELS[level]
    if LOGGER.isEnabledFor(number):
        LOGGER.log(number, json.dumps({"level": level, "event": event, **fields}, default=str))


def configure_logging() -> None:
    """Show our lines at ``$SQS_LOOPS_LOG_LEVEL`` (default INFO): the Lambda runtime's root logger drops
    INFO by default, and a loop must show one line per batch."""
    LOGGER.setLevel(os.environ.get(LOG_LEVEL_ENV, "INFO").upper())
    if not logging.getLogger().handlers and not LOGGER.handlers:
        LOGGER.addHandler(logging.StreamHandler())
