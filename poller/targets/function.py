"""Forwarding to another Lambda function: ``function: NAME`` in the config. The function gets the same
SQS-trigger event it would get from its own trigger and its ``batchItemFailures`` are honoured, so an
existing SQS-triggered function gets rate limits and bounded concurrency without a code change."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from poller.aws.errors import error_code
from poller.logs import log
from poller.sqs.records import failed_ids
from poller.targets.base import RETRY, Failures, all_failed, record_ids
from poller.timing import CONNECT_TIMEOUT_S


@cache
def sync_lambda_client(read_timeout_s: int, region: str) -> Any:
    """A Lambda client for RequestResponse invokes, one per read timeout. No botocore retries: a retried
    invoke would run the batch twice and bypass the rate limit; a failure fails the batch instead, and its
    messages come back (after the retry backoff, if configured)."""
    import boto3
    from botocore.config import Config as BotoConfig

    return boto3.client(
        "lambda",
        region_name=region,
        config=BotoConfig(
            retries={"mode": "standard", "total_max_attempts": 1},  # max_attempts would count retries only
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=read_timeout_s,
        ),
    )


class FunctionTarget:
    def __init__(self, function: str, *, timeout_s: int, region: str, client: Any = None):
        self.function = function
        self.client = client or sync_lambda_client(timeout_s, region)

    def send(self, event: dict[str, Any], context: Any, log_fields: dict[str, object]) -> Failures:
        try:
            answer = self.client.invoke(
                FunctionName=self.function, InvocationType="RequestResponse", Payload=json.dumps(event).encode()
            )
            payload = answer["Payload"].read()
        except Exception as exc:  # throttled, timed out, not found, denied: the batch comes back later
            log(
                "error",
                "forward_failed",
                function=self.function,
                code=error_code(exc) or type(exc).__name__,
                error=str(exc),
                message_ids=record_ids(event),
                **log_fields,
            )
            return all_failed(event)
        if answer.get("FunctionError"):
            # The function raised (or timed out): as with its own trigger, the whole batch fails.
            log(
                "error",
                "function_error",
                function=self.function,
                kind=answer["FunctionError"],
                error=payload[:2000].decode("utf-8", "replace"),
                message_ids=record_ids(event),
                **log_fields,
            )
            return all_failed(event)
        try:
            result = json.loads(payload) if payload else None
        except ValueError:
            result = payload.decode("utf-8", "replace")  # not JSON: read as a bad answer (whole batch)
        return dict.fromkeys(failed_ids(result, record_ids(event), log_fields=log_fields), RETRY)
