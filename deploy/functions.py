"""What the stack sets on its functions beyond serverless.yml's own keys: the poller's async invoke config
(on ``$LATEST`` and on every alias the config names), its reserved concurrency, and the log level of the
JSON log format every function writes in."""

from __future__ import annotations

from typing import Any

from poller.aws.limits import LAMBDA_MAX_EVENT_AGE_S, LAMBDA_MIN_EVENT_AGE_S
from poller.config import Config

FUNCTIONS = ("poller", "scaleUp", "scaleDown", "restart")
"""serverless.yml's function keys; a function's name is ``<prefix>-<key>``."""
POLLER_LOGICAL_ID = "PollerLambdaFunction"  # the Framework's name for the poller's AWS::Lambda::Function


def function_names(prefix: str) -> dict[str, str]:
    return {key: f"{prefix}-{key}" for key in FUNCTIONS}


def max_event_age_s(config: Config) -> int:
    """How long a recursion step may wait in Lambda's async queue (throttled, or the account out of
    concurrency) before Lambda drops it: the heartbeat age past which restart takes the token over anyway.
    An older step would only lose its claim; left at Lambda's default it would sit there for 6 hours."""
    return max(LAMBDA_MIN_EVENT_AGE_S, min(LAMBDA_MAX_EVENT_AGE_S, config.stale_after_s))


def poller_invoke_configs(config: Config) -> dict[str, Any]:
    """The poller's EventInvokeConfig on ``$LATEST`` and on each of ``poller.aliases``: no Lambda retries
    (fencing and restart handle a failed step) and :func:`max_event_age_s`. A loop keeps the qualifier it
    was invoked under, so an alias without this config would fall back to 2 retries and 6 hours."""
    out: dict[str, Any] = {}
    for qualifier in ("$LATEST", *config.poller.aliases):
        name = "PollerEventInvokeConfig" + ("" if qualifier == "$LATEST" else _id(qualifier))
        out[name] = {
            "Type": "AWS::Lambda::EventInvokeConfig",
            "Properties": {
                "FunctionName": {"Ref": POLLER_LOGICAL_ID},
                "Qualifier": qualifier,
                "MaximumRetryAttempts": 0,
                "MaximumEventAgeInSeconds": max_event_age_s(config),
            },
        }
    return out


def function_extensions(config: Config) -> dict[str, Any]:
    """Properties added to the Framework's own function resources (serverless.yml ``resources.extensions``)."""
    reserved = config.poller.reserved_concurrency
    if reserved is None:
        return {}
    return {POLLER_LOGICAL_ID: {"Properties": {"ReservedConcurrentExecutions": reserved}}}


def _id(alias: str) -> str:
    return "".join(c for c in alias.title() if c.isalnum())
