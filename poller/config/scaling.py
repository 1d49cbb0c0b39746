"""The depth rule, which both planes apply: the control plane to the depth it reads (restart, scale_up)
and a loop, to decide whether to ask for help (poller/loop/growth.py). The control plane's whole rule
is scaler/wanted.py."""

from __future__ import annotations

from poller.config.model import QueueConfig


def depth_loops(queue: QueueConfig, depth: int) -> int:
    """``scale_steps`` applied to a depth (visible + in flight messages): the highest step whose ``depth``
    it reaches gives its ``loops``, none gives ``min_loops``; a queue with ``min_loops: 0`` holding any
    message gets at least one loop (else a queue below its first step would never drain); always within
    ``[min_loops, max_loops]``."""
    loops = queue.min_loops
    for step in queue.scale_steps:
        if depth >= step.depth:
            loops = step.loops
    if depth > 0:
        loops = max(loops, 1)
    return max(queue.min_loops, min(queue.max_loops, loops))
