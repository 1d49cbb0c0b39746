"""How many loops a queue should have: the scaling rule, with no AWS in it."""

from __future__ import annotations

from collections.abc import Mapping

from poller.config import QueueConfig

ALARM = "ALARM"


def wanted_loops(queue: QueueConfig, step_states: Mapping[int, str], pinned: int | None = None) -> int:
    """An operator's pin wins (below ``max_loops``, which may have been lowered since the pin). Otherwise
    the highest step (1-based) whose alarm is in ALARM gives its ``loops``; none gives ``min_loops``;
    always within ``[min_loops, max_loops]``."""
    if pinned is not None:
        return max(0, min(queue.max_loops, pinned))
    loops = queue.min_loops
    for number, step in enumerate(queue.scale_steps, start=1):
        if step_states.get(number) == ALARM:
            loops = step.loops
    return max(queue.min_loops, min(queue.max_loops, loops))
