"""Structured logs: one JSON object per event, on the ``sqs_loops`` logger."""

from __future__ import annotations

import json
import logging
import os
import sys

LOGGER = logging.getLogger("sqs_loops")
LOG_LEVEL_ENV = "SQS_LOOPS_LOG_LEVEL"
LAMBDA_LOG_LEVEL_ENV = "AWS_LAMBDA_LOG_LEVEL"
"""Lambda's ApplicationLogLevel (JSON log format), which the deployment sets from ``poller.log_level``."""
LAMBDA_RUNTIME_ENV = "AWS_LAMBDA_RUNTIME_API"
"""Set by Lambda's own runtime only (not by the sandbox's, nor in tests)."""
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
LINE_LEVELS = {"debug": "debug", "info": "info", "warning": "warn", "error": "error"}
"""The ``level`` a line carries: the names Lambda's log-level filtering reads from a JSON line (TRACE, DEBUG,
INFO, WARN, ERROR, FATAL; any other value counts as INFO, so a "warning" would be dropped at level WARN)."""


def log(level: str, event: str, **fields: object) -> None:
    """Emit ``{"level", "event", **fields}`` as one JSON line; values that JSON cannot hold become text."""
    number = _LEVELS[level]
    if LOGGER.isEnabledFor(number):
        LOGGER.log(number, json.dumps({"level": LINE_LEVELS[level], "event": event, **fields}, default=str))


def configure_logging() -> None:
    """Show our lines at ``$SQS_LOOPS_LOG_LEVEL``, else Lambda's ``$AWS_LAMBDA_LOG_LEVEL`` (the deployment's
    ``poller.log_level``), else INFO: the Lambda runtime's root logger drops
    INFO by default, and a loop must show one line per batch. In Lambda the lines go to stdout bare."""
    LOGGER.setLevel(_python_level(os.environ.get(LOG_LEVEL_ENV) or os.environ.get(LAMBDA_LOG_LEVEL_ENV) or "INFO"))
    if LOGGER.handlers:
        return
    if os.environ.get(LAMBDA_RUNTIME_ENV):
        # In Lambda, each line goes to stdout as it is: the runtime's root handler would prefix it with
        # "[INFO] time request-id", and CloudWatch reads metrics (EMF) only from a line that is one JSON
        # object. Powertools' logger does the same.
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        LOGGER.addHandler(handler)
        LOGGER.propagate = False
    elif not logging.getLogger().handlers:
        LOGGER.addHandler(logging.StreamHandler())


def _python_level(name: str) -> int:
    """A level name, ours or Lambda's (TRACE, WARN, FATAL), as a :mod:`logging` level."""
    lambda_names = {"TRACE": logging.DEBUG, "WARN": logging.WARNING, "FATAL": logging.CRITICAL}
    upper = name.upper()
    return lambda_names.get(upper) or logging.getLevelNamesMapping().get(upper, logging.INFO)
