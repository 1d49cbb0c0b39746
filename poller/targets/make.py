"""The target a queue's config names (docs/downstream.md). The function and HTTP targets are imported only
by the queues that use them, so the loop function's cold start pays for neither when it runs handlers alone."""

from __future__ import annotations

from poller.config import QueueConfig
from poller.targets.base import Target
from poller.targets.handler import HandlerTarget, resolve_handler


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
