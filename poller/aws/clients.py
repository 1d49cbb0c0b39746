"""The loop's AWS clients and their time budgets, named with the reason. botocore's own retries stay short:
our retry policy (poller/aws/retry.py), which knows the invocation's deadline, sits on top of them.

boto3 is imported when a client is first made, not when this module is: a cold start pays for it once, on
the first invocation that needs it."""

from __future__ import annotations

from typing import Any

SQS_CONNECT_TIMEOUT_S = 5
"""Connecting to SQS: a healthy endpoint answers in milliseconds; past this the call is retried."""

SQS_READ_TIMEOUT_S = 30
"""Above the longest long poll (20 s), so a healthy long poll never times out on our side."""

SQS_MAX_ATTEMPTS = 3
"""botocore's attempts per SQS call (standard mode), before our own retry policy decides."""

INVOKE_CONNECT_TIMEOUT_S = 2
INVOKE_READ_TIMEOUT_S = 3
"""An async Invoke answers at once; short timeouts keep the recursion inside the time kept for it
(:data:`~poller.timing.RECURSE_RESERVE_S`)."""

INVOKE_MAX_ATTEMPTS = 2
"""botocore's attempts per async Invoke: a retried Invoke may deliver twice, which the claim fences."""


def sqs_client(region: str) -> Any:
    return _client("sqs", region, SQS_CONNECT_TIMEOUT_S, SQS_READ_TIMEOUT_S, SQS_MAX_ATTEMPTS)


def async_lambda_client(region: str) -> Any:
    return _client("lambda", region, INVOKE_CONNECT_TIMEOUT_S, INVOKE_READ_TIMEOUT_S, INVOKE_MAX_ATTEMPTS)


def _client(service: str, region: str, connect_s: float, read_s: float, attempts: int) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": attempts}, connect_timeout=connect_s, read_timeout=read_s
    )
    return boto3.client(service, region_name=region, config=config)


DYNAMODB_CONNECT_TIMEOUT_S = 2
DYNAMODB_READ_TIMEOUT_S = 5
"""A run's counting write answers in milliseconds; past these it is retried (the write is idempotent)."""

DYNAMODB_MAX_ATTEMPTS = 3
"""botocore's attempts per counting write, before our own retry policy decides."""

SNS_CONNECT_TIMEOUT_S = 2
SNS_READ_TIMEOUT_S = 5
SNS_MAX_ATTEMPTS = 3
"""A run's notice: a publish that fails past these is left to restart (poller/runs/notice.py)."""


def dynamodb_client(region: str) -> Any:
    return _client("dynamodb", region, DYNAMODB_CONNECT_TIMEOUT_S, DYNAMODB_READ_TIMEOUT_S, DYNAMODB_MAX_ATTEMPTS)


def sns_client(region: str) -> Any:
    return _client("sns", region, SNS_CONNECT_TIMEOUT_S, SNS_READ_TIMEOUT_S, SNS_MAX_ATTEMPTS)
