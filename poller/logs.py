"""Structured logs: one JSON object per event, on the ``sqs_loops`` logger."""

from __future__ import annotations

import json
import logging

LOGGER = logging.getLogger("sqs_loops")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def log(level: str, event: str, **fields: object) -> None:
    """Emit ``{"level", "event", **fields}`` as one JSON line; values that JSON cannot hold become text."""
    number = _LEVELS[level]
    if LOGGER.isEnabledFor(number):
        LOGGER.log(number, json.dumps({"level": level, "event": event, **fields}, default=str))
