"""One invocation of a loop (docs/loop.md): claim, receive and handle batches while the time allows, hand
over to the next step."""

from __future__ import annotations

from poller.loop.outcome import Outcome
from poller.loop.run import Loop
from poller.loop.services import LoopServices

__all__ = [
    "Loop",
    "LoopServices",
    "Outcome",
]
