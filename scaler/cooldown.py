"""The cool-down: loops are added at once, but removed only once the queue's count has stayed below
them for ``scale_in_cooldown_s`` (docs/scaling.md#cool-down). Pure logic, no AWS.

What is remembered per queue is, for each loop count the rule asked for, the last time (epoch ms) it
asked for that many or more::

    seen = {2: t1, 4: t2}     the rule wanted >= 2 loops at t1 and >= 4 at t2 (t2 <= t1)
    held = the largest count whose time is within the cool-down, else 0

So a queue hovering at a step's depth keeps the step's loops until it has been below the step for a
whole cool-down, and a queue that woke from rest (``min_loops: 0``) keeps its loop until it has been
empty that long."""

from __future__ import annotations

from collections.abc import Mapping


def remember(
    seen: Mapping[int, int], wanted: int, *, now_ms: int, cooldown_s: int, floor: int, at_most: int | None = None
) -> dict[int, int]:
    """``seen`` after the rule asked for ``wanted`` at ``now_ms``: every count up to ``wanted`` was asked
    for now; counts no higher than ``floor`` (``min_loops``, always kept) and entries older than the
    cool-down are dropped, so the row stays a handful of numbers. ``at_most``: counts above it are
    forgotten too (a rate-limited queue whose loops wait for the limit: the loops past what the limit
    keeps busy were never needed, and a memory of them must not bring them back; docs/scaling.md#limit-cap)."""
    fresh = {
        loops: at
        for loops, at in seen.items()
        if now_ms - at < cooldown_s * 1000 and loops > floor and (at_most is None or loops <= at_most)
    }
    for loops in list(fresh):
        if loops <= wanted:
            fresh[loops] = now_ms
    if wanted > floor:
        fresh[wanted] = now_ms
    return fresh


def held_loops(seen: Mapping[int, int], *, now_ms: int, cooldown_s: int) -> int:
    """The count the cool-down still holds at ``now_ms`` (0: none)."""
    return max((loops for loops, at in seen.items() if now_ms - at < cooldown_s * 1000), default=0)
