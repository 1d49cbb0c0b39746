"""What one invocation of a loop did: its end reason and counts, logged as ``loop_end`` and returned."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Outcome:
    """What one invocation did; also the handler's return value (visible in tests and local runs)."""

    reason: str = "time_up"
    recursed: bool = False
    generation: int | None = None
    batches: int = 0
    received: int = 0
    succeeded: int = 0
    failed: int = 0
    returned: int = 0  # not dispatched (lease lost or time up mid-batch), or held behind a failed record of its
    # FIFO group: visible again at once
    heartbeats: int = 0
    loop_counts: int = 0  # refreshes of its lanes in downstreams' state rows (rate-limited queues only)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
