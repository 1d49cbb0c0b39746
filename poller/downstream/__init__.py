"""Protecting what sits downstream: a loop's turns on the rate limits its queue keeps (its own and a shared
downstream's, coordinated through state rows in the token table), and the dispatch of a batch to its target
(whole, or record by record on a pool) in those turns (docs/downstream.md)."""

from __future__ import annotations

from poller.downstream.coordinator import Turns, turns_for
from poller.downstream.dispatch import BatchResult, Dispatcher
from poller.downstream.share import Share
from poller.downstream.state import DynamoSharedStore, LaneTaken, SharedStore, store_for_table

__all__ = [
    "BatchResult",
    "Dispatcher",
    "DynamoSharedStore",
    "LaneTaken",
    "Share",
    "SharedStore",
    "Turns",
    "store_for_table",
    "turns_for",
]
