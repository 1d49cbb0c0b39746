"""The event a loop sends scale_up when its queue wants more loops than it has (docs/scaling.md#two-paths).

Only ``queue_url`` matters to scale_up, and only if it names a configured queue: the depth, the loop and
the count are there for the logs. scale_up reads the depth itself before it acts."""

from __future__ import annotations

from typing import Any

GROWTH_SOURCE = "sqs-loops.growth"
"""``source`` of a growth request: neither an SNS record nor a direct alarm action (``aws.cloudwatch``)."""


def growth_request(queue_url: str, *, loop_id: str, depth: int, wanted: int) -> dict[str, Any]:
    return {"source": GROWTH_SOURCE, "queue_url": queue_url, "loop_id": loop_id, "depth": depth, "wanted": wanted}
