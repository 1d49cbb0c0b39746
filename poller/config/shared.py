"""A shared downstream in the config: what sits behind one or more queues and the limits all their loops keep
together (``downstreams:`` at the top level; a queue names one with ``downstream:``; docs/downstream.md)."""

from __future__ import annotations

from dataclasses import dataclass

PRIVATE_PREFIX = "queue:"
"""A queue's own ``rate_limit`` runs as a downstream of its own, named ``queue:<key>``."""


@dataclass(frozen=True)
class Downstream:
    """``rate_limit``: messages a second, all its queues and loops together. ``max_in_flight``: messages
    being handled at once, all together (None: no such limit); ``in_flight_per_loop``: what each loop may
    hold of it (``max_in_flight`` split over the ``max_loops`` of its queues, set when the config loads)."""

    name: str
    rate_limit: float
    max_in_flight: int | None = None
    in_flight_per_loop: int | None = None

    @classmethod
    def private(cls, queue_key: str, rate_limit: float) -> Downstream:
        return cls(name=PRIVATE_PREFIX + queue_key, rate_limit=rate_limit)
