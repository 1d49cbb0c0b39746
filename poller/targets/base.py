"""What every target shares: the :class:`Target` protocol (an SQS-trigger event in, the failed records out)
and how a record fails (:class:`Failure`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


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
