"""The deployed functions' environment (a contract: see docs/loop.md and docs/scaling.md)."""

from __future__ import annotations

import os

from poller.exceptions import ConfigError

LOOPS_TABLE = "LOOPS_TABLE"  # the token table's name
POLLER_FUNCTION = "POLLER_FUNCTION"  # name or ARN of the loop function
LOOPS_PREFIX = "LOOPS_PREFIX"  # <service>-<stage>: prefix of every alarm and topic name
SCALE_UP_FUNCTION = "SCALE_UP_FUNCTION"  # optional: name of scale_up, which loops ask for growth


def region() -> str:
    """The region the function runs in (Lambda sets AWS_REGION)."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"{name} is not set: the deployment sets it on every function (see docs/loop.md)")
    return value
