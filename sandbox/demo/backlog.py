"""The limit cap's figures of one queue over its backlog in a demo run (the report's ``limit_cap``): the
loop-seconds its steps ran against the fewest that keep its limit busy, and how much of its limit it used
(docs/scaling.md#limit-cap, docs/operations.md)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any

from poller.config import QueueConfig


def backlog_figures(
    samples: list[dict[str, Any]],
    queue: QueueConfig,
    decisions: list[tuple[float, dict[str, Any]]],
    calls: list[float],
    loop_s: Callable[[float, float], float],
    *,
    since: float | None = None,
) -> dict[str, Any]:
    """The limit cap's figures of one queue over its backlog (times in seconds since the run began):
    ``decisions`` the control plane's lines for it, ``calls`` its vendor calls, ``loop_s(a, b)`` the
    loop-seconds its steps ran between ``a`` and ``b``. The minimum is, second by second, the loops that
    keep its limit busy (its share then, as the last decision read it) at the loops' measured unwaited
    pace (the median ``per_loop`` of the decisions that had figures), within ``[min_loops, max_loops]``;
    ``minimum_for_calls_loop_s`` the same for the calls it made (less, when the limit was not full);
    ``minimum_at_pace_then_loop_s`` the same at the pace the last decision read then (its figures; the
    median before any): what the limit needed while the loops were slower (a loaded sandbox) or faster;
    ``rule_loop_s`` is what the alarm and depth rule asked for at the same decisions, before the cap and
    the cool-down (what today's rule would have started at least; not a run of it: its extra loops would
    have changed the depths it then read; `poller.limit_cap: false` runs it). ``limit_use``: its calls over its
    limit while messages waited (``waited_s``: to the first sample with none visible), ``limit_use_with_tail``
    the same to the backlog's end. ``since``: only from then on."""
    key, min_loops = queue.key, queue.min_loops
    deep = [s["t"] for s in samples if s["queues"][key]["visible"] > 0]
    busy = [s["t"] for s in samples if s["queues"][key]["visible"] + s["queues"][key]["in_flight"] > 0]
    if since is not None:
        deep = [t for t in deep if t >= since]
    if not deep:
        return {"backlog_s": 0.0}
    start, end = deep[0], busy[-1]
    # The limit's use counts while messages waited to be received: to the first sample that found none
    # visible. What is then still in flight (the demo's last poison message waiting out its last backoff
    # before its redrive, 3-5 s) is nothing any number of loops could hand over.
    waited_end = min(next((s["t"] for s in samples if s["t"] > deep[-1]), end), end)
    paces = [line["limited"]["per_loop"] for _, line in decisions if line["limited"].get("figures")]
    pace = statistics.median(paces) if paces else None
    spent = loop_s(start, end)
    seconds = max(1, math.ceil(end - start))
    per_second = [0] * seconds
    for t in calls:
        if start <= t < start + seconds:
            per_second[int(t - start)] += 1
    shares = [_at(decisions, start + n, lambda line: float(line["limited"]["limit"])) for n in range(seconds)]

    def loops(rate: float, at: float | None = None) -> int:  # to hand over ``rate`` a second at the pace
        pace_ = at or pace
        return min(queue.max_loops, max(min_loops, math.ceil(rate / pace_ - 1e-9))) if pace_ else 0

    def pace_then(line: dict[str, Any]) -> float:
        return float(line["limited"]["per_loop"] if line["limited"].get("figures") else pace or 0)

    minimum = sum(loops(share) for share in shares) if pace else None
    paces_then = [_at(decisions, start + n, pace_then) for n in range(seconds)]
    then = sum(loops(share, at) for share, at in zip(shares, paces_then, strict=True)) if pace else None
    for_calls = sum(loops(n) for n in per_second) if pace else None
    limits = _stepped(decisions, start, end, lambda line: float(line["limited"]["limit"]))
    limits_waited = _stepped(decisions, start, waited_end, lambda line: float(line["limited"]["limit"]))
    handed_waited = sum(1 for t in calls if start <= t < waited_end)
    rule = _stepped(decisions, start, end, lambda line: float(min(queue.max_loops, max(min_loops, line["rule"]))))
    handed = sum(per_second)
    return {
        "backlog_s": round(end - start, 1),
        "loop_s": round(spent, 1),
        "pace_per_loop": pace,
        "minimum_loop_s": minimum,
        "loop_s_ratio": round(spent / minimum, 2) if minimum else None,
        "minimum_for_calls_loop_s": for_calls,
        "minimum_at_pace_then_loop_s": then,
        "loop_s_ratio_at_pace_then": round(spent / then, 2) if then else None,
        "calls": handed,
        "limit_use": round(handed_waited / limits_waited, 3) if limits_waited else None,
        "waited_s": round(waited_end - start, 1),
        "limit_use_with_tail": round(handed / limits, 3) if limits else None,
        "rule_loop_s": round(rule, 1),
    }


ALONE_KEYS = (
    "backlog_s",
    "loop_s",
    "minimum_at_pace_then_loop_s",
    "loop_s_ratio_at_pace_then",
    "calls",
    "limit_use",
    "waited_s",
    "limit_use_with_tail",
)
"""The figures the report gives again for the part of a queue's backlog after its downstream's other queues
were done (``alone``)."""


def _at(decisions: list[tuple[float, dict[str, Any]]], t: float, value: Any) -> float:
    """What the last decision before ``t`` said (the first one's, before any)."""
    said = [line for at, line in decisions if at <= t] or [line for _, line in decisions[:1]]
    return float(value(said[-1])) if said else 0.0


def _stepped(decisions: list[tuple[float, dict[str, Any]]], start: float, end: float, value: Any) -> float:
    """The integral over ``[start, end]`` of what each decision said, held until the next (seconds x value)."""
    total, t, current = 0.0, start, None
    for at, line in decisions:
        if at > start and current is not None:
            total += current * (min(at, end) - t)
        if at >= end:
            break
        t, current = max(at, start), value(line)
    if current is not None and t < end:
        total += current * (end - t)
    return total
