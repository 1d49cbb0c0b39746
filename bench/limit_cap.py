"""``python -m bench.limit_cap``: the limit cap against today's rule, side by side, on a rate-limited
backlog (docs/benchmarks.md#limit-cap).

A simulation of the control plane's *rule*, not of AWS: each simulated second the queue's loops hand
over ``min(rate_limit, loops x unwaited pace)`` records; every minute restart applies the real rule code
(``scaler.wanted``, ``scaler.cooldown``, ``scaler.limit_cap``) to the backlog it sees and to the paces the
loops wrote with their last heartbeat (a loop reports once it has worked a whole ``heartbeat_s``). What it
shows is what the rule does with honest figures; that the loops measure their pace honestly is tested on
moto (tests/test_limit_cap_moto.py).

Figures per case: loop-seconds while the backlog lasts against the minimum that sustains the limit
(``ceil(limit / pace)`` loops for ``backlog / limit`` seconds; target <= 1.2 x), the limit's use while the
backlog lasts (target >= 95 %), and after a handler 5 x slower mid-run, the seconds until the queue has
the loops it now needs (target: within two cool-downs)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from poller.config import QueueConfig, parse_config
from scaler.cooldown import held_loops, remember
from scaler.limit_cap import cap_loops
from scaler.wanted import capped, combined_loops, rule_loops

RESTART_S = 60
HEARTBEAT_S = 75

CASES = {
    # one queue at 50/s (the worked example of docs/downstream.md before shared downstreams): 5 calls of 200 ms in flight a loop
    "vendor-sync": ("rate_limit: 50, max_loops: 4, min_loops: 0", [(1, 2), (2000, 4)], 40_000, 25.0),
    # the demo's emails queue: 30/s, one loop hands over ~107/s
    "emails": ("rate_limit: 30, max_loops: 4, min_loops: 1", [(20, 2), (100, 4)], 40_000, 107.0),
}


@dataclass
class Run:
    loop_s: float = 0.0
    handed: float = 0.0
    seconds: int = 0
    caught_up_s: int | None = None  # after the slowdown: seconds until the loops it now needs work


def _queue(keys: str, steps: list[tuple[int, int]]) -> QueueConfig:
    steps_text = ", ".join(f"{{depth: {d}, loops: {n}}}" for d, n in steps)
    text = f"queues:\n  q: {{queue: q, handler: m.h, {keys}, scale_steps: [{steps_text}]}}\n"
    return parse_config(text, source="bench-limit-cap").queues["q"]


def simulate(queue: QueueConfig, backlog: int, pace: float, *, cap: bool, slow_at_s: int | None = None) -> Run:
    """Drain ``backlog`` at ``queue.rate_limit``; ``pace``: one loop's unwaited records a second (divided
    by 5 from ``slow_at_s`` on)."""
    limit = float(queue.rate_limit or 0)
    run, left, seen = Run(), float(backlog), {}  # type: ignore[var-annotated]
    loops: list[int] = []  # each live loop's start second
    reported: float | None = None  # the pace on the rows (the last heartbeat's)
    t = 0
    while left > 0:
        now_pace = pace / 5 if slow_at_s is not None and t >= slow_at_s else pace
        if t % RESTART_S == 0:
            rule = rule_loops(queue, None, math.ceil(left))
            limited = cap_loops(limit, [reported] if reported is not None and cap else [])
            cap_n = None if limited is None else limited.loops
            held = held_loops(seen, now_ms=t * 1000, cooldown_s=queue.scale_in_cooldown_s)
            seen = remember(
                seen, capped(rule, cap_n), now_ms=t * 1000, cooldown_s=queue.scale_in_cooldown_s, floor=queue.min_loops
            )
            wanted = combined_loops(queue, None, math.ceil(left), held=held, cap=cap_n)
            loops = (loops + [t] * wanted)[:wanted]
        # A loop's heartbeat reports the pace it measured over the last heartbeat_s (the fading sums).
        if any(t - start >= HEARTBEAT_S and (t - start) % HEARTBEAT_S == 0 for start in loops):
            reported = now_pace
        done = min(left, limit, len(loops) * now_pace)
        if (
            slow_at_s is not None
            and t >= slow_at_s
            and run.caught_up_s is None
            and len(loops) >= needed(queue, limit, now_pace)
        ):
            run.caught_up_s = t - slow_at_s
        left -= done
        run.handed += done
        run.loop_s += len(loops)
        run.seconds += 1
        t += 1
    return run


def needed(queue: QueueConfig, limit: float, pace: float) -> int:
    """The fewest loops that sustain ``limit`` at ``pace`` (no more than ``max_loops`` can be had)."""
    return min(queue.max_loops, math.ceil(limit / pace))


def measure() -> dict[str, Any]:
    """Per case, a backlog of 40,000 records and one of an hour at the limit, under both rules."""
    out: dict[str, Any] = {}
    for name, (keys, steps, backlog, pace) in CASES.items():
        queue = _queue(keys, steps)
        limit = float(queue.rate_limit or 0)
        for label, records in (("", backlog), ("-1h", int(limit * 3600))):
            minimum = needed(queue, limit, pace) * records / limit
            figures: dict[str, Any] = {"backlog": records, "minimum_loop_s": round(minimum)}
            for rule, cap in (("today", False), ("cap", True)):
                run = simulate(queue, records, pace, cap=cap)
                slow = simulate(queue, records, pace, cap=cap, slow_at_s=records // int(limit) // 2)
                figures[rule] = {
                    "loop_s": round(run.loop_s),
                    "loop_s_ratio": round(run.loop_s / minimum, 2),
                    "limit_use": round(run.handed / run.seconds / limit, 3),
                    "slow_handler_caught_up_s": slow.caught_up_s,
                }
            out[name + label] = figures
    return out


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
