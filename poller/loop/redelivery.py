"""When a failed message becomes visible again (docs/downstream.md#retry-backoff).

Without ``retry_backoff`` a failed message comes back when its visibility timeout ends, as with Lambda's
SQS trigger. With it, after the n-th receive it comes back after a delay drawn uniformly from
``[base_s, min(max_s, base_s * 2 ** (n - 1))]`` seconds, so a struggling downstream is not hammered and
many loops do not retry in step. A downstream's Retry-After is a floor on that delay (and is honoured even
without ``retry_backoff``); a permanent failure comes back at once, toward the dead-letter queue, when the
config names one (``create`` or ``dlq``): without one, coming back at once would retry it in a tight cycle,
so it waits like any other failure.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence

from poller.aws.limits import SQS_MAX_VISIBILITY_S
from poller.config import RetryBackoff
from poller.sqs.records import Message
from poller.sqs.redrive import receive_count
from poller.targets.base import Failure


def redelivery_delay_s(
    failure: Failure, message: Message, backoff: RetryBackoff | None, rand: random.Random, *, has_dlq: bool = True
) -> int | None:
    """Seconds until the failed ``message`` is visible again, or None to leave its visibility timeout as is.
    ``has_dlq``: the queue has a dead-letter queue for permanent failures to go to."""
    if failure.permanent and has_dlq:
        return 0
    delay: float | None = None
    if backoff is not None:
        delay = rand.uniform(backoff.base_s, backoff.ceiling_s(receive_count(message)))
    if failure.retry_after_s is not None:
        delay = max(delay or 0.0, failure.retry_after_s)
    return None if delay is None else min(SQS_MAX_VISIBILITY_S, math.ceil(delay))


def redelivery_plan(
    messages: Sequence[Message],
    failures: Mapping[str, Failure],
    backoff: RetryBackoff | None,
    rand: random.Random,
    *,
    has_dlq: bool,
) -> list[tuple[Message, int]]:
    """(message, visibility timeout in seconds from now) for every failed message whose return is changed."""
    plan = []
    for message in messages:
        failure = failures.get(message["MessageId"])
        if failure is not None:
            delay = redelivery_delay_s(failure, message, backoff, rand, has_dlq=has_dlq)
            if delay is not None:
                plan.append((message, delay))
    return plan
