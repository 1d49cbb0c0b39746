"""How many loops a queue should have: the scaling rule, with no AWS in it.

Two readings of the same ``scale_steps`` feed it: the depth alarms' states (what CloudWatch saw) and a
fresh depth read (what the control plane saw itself, docs/scaling.md#two-paths); the larger count wins,
and so does a count still held by the cool-down (:mod:`scaler.cooldown`)."""

from __future__ import annotations

from collections.abc import Mapping

from poller.config import QueueConfig
from poller.config.scaling import depth_loops

ALARM = "ALARM"


def _clamp(queue: QueueConfig, loops: int) -> int:
    return max(queue.min_loops, min(queue.max_loops, loops))


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
    return _clamp(queue, loops)


def combined_loops(
    queue: QueueConfig,
    step_states: Mapping[int, str] | None,
    depth: int | None,
    *,
    held: int = 0,
    pinned: int | None = None,
    cap: int | None = None,
    keep: int | None = None,
) -> int:
    """``max(min(cap, max(alarm rule, depth rule)), held)`` within ``[min_loops, max_loops]``; a pin wins
    over all. ``None`` for the alarm states or the depth: that reading failed, and the other decides alone.
    ``cap``: the loops a rate limit keeps busy (:mod:`scaler.limit_cap`; None: no cap). The cool-down
    remembers the capped count, so ``held`` keeps loops a lowered cap no longer wants for a cool-down,
    except while the loops report that they wait for the limit: then ``keep`` (the cap with its headroom)
    bounds what the cool-down holds, since a queue whose loops wait for their share is not hovering on
    its depth, and the loops past it only wait (None: the whole cool-down holds)."""
    if pinned is not None:
        return wanted_loops(queue, {}, pinned)
    rule = capped(rule_loops(queue, step_states, depth), cap)
    if keep is not None:
        held = min(held, max(rule, keep))
    return _clamp(queue, max(rule, held))


def capped(rule: int, cap: int | None) -> int:
    """The rule's count under the limit cap (what the cool-down remembers)."""
    return rule if cap is None else min(rule, cap)


def rule_loops(queue: QueueConfig, step_states: Mapping[int, str] | None, depth: int | None) -> int:
    """``max(alarm rule, depth rule)`` now, without the cool-down: the count the cool-down remembers."""
    by_alarms = wanted_loops(queue, step_states) if step_states is not None else queue.min_loops
    by_depth = depth_loops(queue, depth) if depth is not None else queue.min_loops
    return max(by_alarms, by_depth)
