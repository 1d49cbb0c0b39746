"""The benchmarks' handler: an ordinary SQS-trigger handler that does nothing with its records, so what is
measured is the loop around it. It tells the benchmark's context about each batch (when the context
listens), which lets a benchmark stop a loop after N messages, refill the queue, or advance a fake clock."""

from __future__ import annotations

import time
from typing import Any


def noop(event: dict[str, Any], context: Any) -> dict[str, Any]:
    on_batch = getattr(context, "on_batch", None)
    if on_batch is not None:
        on_batch(event["Records"])
    return {"batchItemFailures": []}


def busy_100ms(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A handler that works 100 ms a batch (waiting on its own downstream, say): the loop's receive and
    delete can then overlap its work."""
    time.sleep(0.1)
    return noop(event, context)


SLOW_BATCH_S = 0.4
"""The sandbox benchmark's handler time per batch: a backlog then outlasts an alarm period."""


def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
    time.sleep(SLOW_BATCH_S)
    return noop(event, context)
