"""Where a queue's messages go: an in-process handler, a Lambda function invoked synchronously, or an HTTP
endpoint (docs/downstream.md). Each takes an SQS-trigger event and answers which records failed, and how.

The function and HTTP targets are imported only by the queues that use them, so the loop function's cold
start pays for neither when it runs handlers alone.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from poller.config import QueueConfig
from poller.logs import log
from poller.sqs.records import failed_ids
from poller.targets.handler import Handler, resolve_handler


@dataclass(frozen=True)
class Failure:
    """How one record failed. ``retry_after_s``: the downstream asked to be left alone this long (an HTTP
    Retry-After); ``permanent``: retrying cannot help (an HTTP 4xx other than 429): it goes back at once,
    toward the dead-letter queue, without a backoff."""

    retry_after_s: float | None = None
    permanent: bool = False


RETRY = Failure()
Failures = Mapping[str, Failure]
"""Failed records by message id; a record not named succeeded."""


class Target(Protocol):
    def send(self, event: dict[str, Any], context: Any, log_fields: dict[str, object]) -> Failures:
        """Deliver ``event`` (``{"Records": [...]}``); never raises for a failure of the records."""


def record_ids(event: dict[str, Any]) -> list[str]:
    return [str(r["messageId"]) for r in event["Records"]]


def all_failed(event: dict[str, Any], failure: Failure = RETRY) -> dict[str, Failure]:
    return dict.fromkeys(record_ids(event), failure)


class HandlerTarget:
    """``handler(event, context)``, read as the SQS trigger reads it: raising fails every record."""

    def __init__(self, handler: Handler):
        self.handler = handler

    def send(self, event: dict[str, Any], context: Any, log_fields: dict[str, object]) -> Failures:
        ids = record_ids(event)
        try:
            answer = self.handler(event, context)
        except Exception as exc:  # the trigger's rule: an exception fails the whole batch
            log(
                "error",
                "handler_error",
                error=f"{type(exc).__name__}: {exc}",
                traceback="".join(traceback.format_exception(exc))[-4000:],
                message_ids=ids,
                **log_fields,
            )
            return all_failed(event)
        return dict.fromkeys(failed_ids(answer, ids, log_fields=log_fields), RETRY)


def make_target(queue: QueueConfig, *, region: str) -> Target:
    """The queue's target. Raises :class:`~poller.exceptions.HandlerImportError` for a handler path that
    cannot be imported."""
    if queue.function is not None:
        from poller.targets.function import FunctionTarget

        return FunctionTarget(queue.function, timeout_s=queue.handler_timeout_s, region=region)
    if queue.http is not None:
        from poller.targets.http import HttpForward

        return HttpForward(queue.http)
    assert queue.handler is not None  # the config guarantees exactly one target
    return HandlerTarget(resolve_handler(queue.handler))
