"""Checks across fields, made when the config loads: combinations that each field alone cannot show wrong,
but that a running loop would pay for (a batch that cannot fit in an invocation, a lease a slow tick could
lose, two keys on one queue, a queue in another region). Each raises the reader's
:class:`~poller.exceptions.ConfigError` naming the field to change."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from poller.aws.arn import Arn
from poller.config.model import Config, PollerSettings, QueueConfig
from poller.exceptions import ConfigError
from poller.timing import RECURSE_RESERVE_S

Fail = Callable[[str, str], ConfigError]


def lease_covers_keeper(settings: PollerSettings, fail: Fail) -> None:
    if settings.heartbeat_s >= settings.timeout_s:
        raise fail(
            "poller.heartbeat_s", f"must be below poller.timeout_s ({settings.timeout_s}), got {settings.heartbeat_s}"
        )
    if settings.lease_margin_s < settings.keeper_interval_s:
        # While a handler runs, a heartbeat can be a keeper interval late: the margin must cover it.
        raise fail("poller.lease_margin_s", f"must be at least the keeper interval ({settings.keeper_interval_s:g} s)")


def batch_fits_invocation(queue: QueueConfig, poller: PollerSettings, where: str, fail: Fail) -> None:
    needed = queue.wait_time_s + queue.batch_budget_s + RECURSE_RESERVE_S
    if needed > poller.timeout_s:
        raise fail(
            f"{where}.handler_timeout_s",
            f"wait_time_s ({queue.wait_time_s}) + a batch's budget ({queue.batch_budget_s:g} s: "
            f"handler_timeout_s {queue.handler_timeout_s}, and a forwarding target's connect time or a "
            f"rate-limited queue's wait) + {RECURSE_RESERVE_S} s to recurse must fit in poller.timeout_s "
            f"({poller.timeout_s})",
        )


def no_shared_queues(queues: Mapping[str, QueueConfig], fail: Fail) -> None:
    # Two keys on one queue would double its loops and make a loop event's queue ambiguous.
    seen: dict[str, str] = {}
    for key, queue in queues.items():
        identity = queue.ref.identity
        if identity in seen:
            raise fail(f"queues.{key}.queue", f"{queue.queue!r} is already the queue of {seen[identity]!r}")
        seen[identity] = key


def sends_to_known_queues(queues: Mapping[str, QueueConfig], fail: Fail) -> None:
    # The permission to send is rendered per configured queue: a key of no queue would grant nothing and
    # fail only when the handler first sends.
    for key, queue in queues.items():
        for target in queue.sends_to:
            if target not in queues:
                raise fail(
                    f"queues.{key}.sends_to",
                    f"{target!r} is not a queue of this file (its queues: {', '.join(queues)})",
                )


def reserved_covers_loops(poller: PollerSettings, queues: Mapping[str, QueueConfig], fail: Fail) -> None:
    reserved, most = poller.reserved_concurrency, sum(q.max_loops for q in queues.values())
    if reserved is not None and reserved < most:
        # Every loop is one running poller: below the sum of max_loops, loops past it would wait in
        # Lambda's async queue (throttled) until their event expires, and restart would revive them in vain.
        raise fail(
            "poller.reserved_concurrency",
            f"{reserved} is below the loops the queues may run together (the sum of max_loops: {most})",
        )


def queues_in_region(config: Config, region: str) -> None:
    """Every queue, dead-letter queue and KMS key the config names lies in ``region``, the deployment's.

    Why a queue elsewhere is refused rather than served: its loop's SQS client, the trigger event's
    ``eventSourceARN`` and its depth alarms would all have to live in the queue's region, and an alarm can
    never see another region's SQS metrics, so such a queue would be consumed but never scaled by depth.
    A queue in another account of the same region works (give its URL): see docs/config.md."""
    for key, queue in config.queues.items():
        named = [("queue", queue.ref), ("dlq", queue.dlq_ref())]
        for name, ref in named:
            if ref is not None and ref.region is not None and ref.region != region:
                raise ConfigError(
                    f"{config.path}: queues.{key}.{name}: the queue is in {ref.region}, the deployment in {region}:"
                    " sqs-loops serves queues of its own region only (deploy a second stack in that region)"
                )
        kms = Arn.parse(queue.kms_key or "")
        if kms is not None and kms.region != region:
            raise ConfigError(
                f"{config.path}: queues.{key}.kms_key: the key is in {kms.region}, the deployment in {region}:"
                " SQS uses a key of the queue's own region"
            )
