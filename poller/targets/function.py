"""Forwarding to another Lambda function: ``function: NAME`` in the config. The function gets the same
SQS-trigger event it would get from its own trigger and its ``batchItemFailures`` are honoured, so an
existing SQS-triggered function gets rate limits and bounded concurrency without a code change."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import cache
from typing import Any

from poller.aws.errors import error_code
from poller.logs import log
from poller.sqs.records import failed_ids
from poller.targets.base import RETRY, Failure, Failures, all_failed, record_ids
from poller.targets.payload import fitting_events, payload
from poller.timing import CONNECT_TIMEOUT_S

STALE_CONNECTION_S = 1.0
"""A call that fails on a closed connection within this time of being sent met a pooled connection the
function's endpoint had already closed (idle keep-alive): the request never reached it, so it is sent once
more. Later, the function may have run: the batch fails and comes back instead of running twice at once."""


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
            # total_max_attempts counts the first try; botocore's max_attempts counts retries only (1 = two calls).
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=read_timeout_s,
        ),
    )


class FunctionTarget:
    def __init__(
        self,
        function: str,
        *,
        timeout_s: int,
        region: str,
        client: Any = None,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.function = function
        self.client = client or sync_lambda_client(timeout_s, region)
        self.monotonic = monotonic

    def send(self, event: dict[str, Any], context: Any, log_fields: dict[str, object]) -> Failures:
        """The batch in as many calls as keep each payload under 6 MB. On a FIFO queue a call that fails
        anything fails the calls after it too, so that no later record of a group runs before an earlier."""
        failures: dict[str, Failure] = {}
        for part in fitting_events(event):
            if failures and any("MessageGroupId" in r.get("attributes", {}) for r in part["Records"]):
                failures.update(all_failed(part))
                continue
            failures.update(self._send(part, log_fields))
        return failures

    def _invoke(self, event: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        body = payload(event)
        for attempt in (1, 2):
            sent = self.monotonic()
            try:
                answer = self.client.invoke(FunctionName=self.function, InvocationType="RequestResponse", Payload=body)
                return answer, answer["Payload"].read()
            except Exception as exc:
                if attempt == 2 or not _stale_connection(exc) or self.monotonic() - sent > STALE_CONNECTION_S:
                    raise
                log("info", "forward_reconnect", function=self.function, error=str(exc))
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _send(self, event: dict[str, Any], log_fields: dict[str, object]) -> Failures:
        try:
            answer, payload = self._invoke(event)
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


def _stale_connection(exc: BaseException) -> bool:
    """botocore's error for a connection closed before any answer came (urllib3's RemoteDisconnected)."""
    from botocore.exceptions import ConnectionClosedError

    return isinstance(exc, ConnectionClosedError)
