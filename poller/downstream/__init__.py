"""Protecting what sits downstream: a loop's share of a queue's rate limit, and the dispatch of a batch to
its target (whole, or record by record on a pool) under that share (docs/downstream.md)."""

from __future__ import annotations

from poller.downstream.dispatch import BatchResult, Dispatcher
from poller.downstream.rate import RateShare

__all__ = [
    "BatchResult",
    "Dispatcher",
    "RateShare",
]
