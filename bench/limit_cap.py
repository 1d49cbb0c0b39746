"""``python -m bench.limit_cap``: the limit cap against today's rule (no cap), side by side, on rate-limited
backlogs and on the shared downstream of docs/downstream.md's worked example (docs/benchmarks.md#limit-cap).

A simulation of the control plane's *rule*, not of AWS, in steps of one second. Each second a queue's
loops hand over ``min(limit or share, loops x unwaited pace)`` records and feed what they did into the
real :class:`poller.lease.pace.Pace` (a batch a second: records handed, the rest of the second waiting).
A loop writes its figures as a :class:`poller.lease.lease.Lease` does: as soon as it has some when its
row has none of its own (a new loop), then every ``heartbeat_s``; every ``STEP_S`` it recurses with a
fresh Pace. A batch's receive returns at the start of its second (the Pace leaves out the empty long polls
before it, as a loop does); the queue's resting loops were half a step into their invocation when the
backlog came. Restart runs every minute from the backlog's first second, and a loop asks for growth as
``poller/loop/growth.py`` does (``GROWTH_CHECK_S`` into its step, when the depth rule wants more loops
than there are); both decide with the real rule code (``scaler.wanted``, ``scaler.cooldown``,
``scaler.limit_cap``, and on a shared downstream ``scaler.share`` over the allocation of
``poller.downstream.shares``). What it shows is what the rule does with honest figures; that the loops
measure them honestly is tested on moto (tests/test_limit_cap_moto.py).

Figures per case: loop-seconds while the backlog lasts against the minimum that sustains the limit
(``ceil(limit / pace)`` loops for ``backlog / limit`` seconds; target <= 1.2 x), the limit's use while
the backlog lasts (target >= 95 %), and after a handler 5 x slower mid-run, the seconds until the queue
has the loops it now needs (target: within two cool-downs)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from poller.config import Config, QueueConfig, parse_config
from poller.config.scaling import depth_loops
from poller.downstream.shares import LaneRecord, allocate
from poller.lease.pace import Pace, PaceFigures
from poller.loop.growth import GROWTH_CHECK_S
from scaler.cooldown import held_loops, remember
from scaler.limit_cap import cap_loops, limit_of
from scaler.share import share_of
from scaler.wanted import capped, combined_loops, rule_loops

RESTART_S = 60
STEP_S = 900  # a loop's invocation (poller.timeout_s)
GB_S = 0.125 * 0.0000133334  # one loop-second at 128 MB on arm64, us-east-1 (AWS-FACTS.md)
NIGHTS = 30

CASES = {
    # one queue at 50/s (the vendor of docs/downstream.md on its own): 5 calls of 200 ms in flight a loop
    "vendor-sync": ("rate_limit: 50, max_loops: 4, min_loops: 0", [(1, 2), (2000, 4)], 40_000, 25.0),
    # the demo's emails queue: 30/s, one loop hands over ~107/s
    "emails": ("rate_limit: 30, max_loops: 4, min_loops: 1", [(20, 2), (100, 4)], 40_000, 107.0),
}

WORKED = """
downstreams:
  vendor: {rate_limit: 50}
queues:
  accounts: {queue: accounts, handler: m.h, downstream: vendor, priority: 1, max_loops: 1}
  groups: {queue: groups, handler: m.h, downstream: vendor, weight: 1, max_loops: 2,
           scale_steps: [{depth: 1, loops: 2}]}
  items: {queue: items, handler: m.h, downstream: vendor, weight: 3, concurrency: 5, max_loops: 3,
          scale_steps: [{depth: 1, loops: 1}, {depth: 5000, loops: 3}]}
"""
"""docs/downstream.md's worked example: 1,000 accounts -> 4 groups each -> 7.5 (or 15) items a group."""
WORKED_PACE = {"accounts": 5.0, "groups": 5.0, "items": 25.0}  # 200 ms a call; items 5 at a time
WORKED_FAN_OUT = {"accounts": ("groups", 4.0), "groups": ("items", 7.5)}


@dataclass
class Loop:
    step_start: int
    pace: Pace
    figures: PaceFigures | None = None  # on its row
    figures_at: int = -(10**9)
    reported: bool = False  # Lease.reported: the row carries recent figures of this loop
    heartbeat_at: int = 0
    seen: int = 1  # GrowthWatch.seen
    carry: float = 0.0  # fractions of a record, handed over in a later second


@dataclass
class Sim:
    """One queue's loops and the control plane's memory of it."""

    queue: QueueConfig
    config: Config
    cap: bool
    left: float = 0.0
    loops: list[Loop] = field(default_factory=list)
    seen: dict[int, int] = field(default_factory=dict)
    loop_s: float = 0.0
    handed: float = 0.0

    def resize(self, wanted: int, t: int) -> None:
        self.loops = self.loops[:wanted]  # the newest slots retire first
        while len(self.loops) < wanted:
            self.loops.append(Loop(t, Pace(float(t)), heartbeat_at=t))

    def decide(self, t: int, limit: float, *, grow_only: bool = False, whole: float | None = None) -> None:
        depth = math.ceil(self.left)
        rule = rule_loops(self.queue, None, depth)
        now_ms = t * 1000
        cap = keep = None
        if self.cap:
            fresh = [p.figures for p in self.loops if p.figures and t - p.figures_at <= self.config.stale_after_s]
            limited = cap_loops(limit, [f for f in fresh if f is not None], live=len(self.loops), whole=whole)
            cap, keep = limited.loops, limited.keep_while_waiting
        cooldown = self.queue.scale_in_cooldown_s
        held = held_loops(self.seen, now_ms=now_ms, cooldown_s=cooldown)
        floor = self.queue.min_loops
        self.seen = remember(
            self.seen, capped(rule, cap), now_ms=now_ms, cooldown_s=cooldown, floor=floor, at_most=keep
        )
        wanted = combined_loops(self.queue, None, depth, held=held, cap=cap, keep=keep)
        self.resize(max(wanted, len(self.loops)) if grow_only else wanted, t)

    def growth_checks(self, t: int, limit: float, whole: float | None = None) -> None:
        for loop in list(self.loops):
            since = t - loop.step_start
            if self.left > 0 and since >= GROWTH_CHECK_S and since % GROWTH_CHECK_S == 0:
                want = depth_loops(self.queue, math.ceil(self.left))
                if want > loop.seen:
                    loop.seen = want
                    if want > len(self.loops):
                        self.decide(t, limit, grow_only=True, whole=whole)

    def second(self, t: int, rate: float, pace: float) -> float:
        """The loops hand over ``rate`` records this second (at most what is left); returns what they did."""
        done = min(self.left, rate)
        per_loop = done / len(self.loops) if self.loops else 0.0
        for loop in self.loops:
            loop.carry += per_loop
            handed = int(loop.carry)
            loop.carry -= handed
            loop.pace.batch(handed=handed, waited_s=max(0.0, 1 - per_loop / pace), received_at=float(t), now=t + 1.0)
            self._heartbeat(loop, t + 1)
            if t + 1 - loop.step_start >= STEP_S:  # recursion: a new invocation, a new Pace
                loop.step_start, loop.pace, loop.seen = t + 1, Pace(t + 1.0), 1
                loop.reported = t + 1 - loop.figures_at < self.config.poller.heartbeat_s
        self.left -= done
        self.handed += done
        self.loop_s += len(self.loops)
        return done

    def _heartbeat(self, loop: Loop, t: int) -> None:
        figures = loop.pace.figures()
        if t - loop.heartbeat_at >= self.config.poller.heartbeat_s or (not loop.reported and figures is not None):
            loop.heartbeat_at, loop.reported = t, figures is not None
            if figures is not None:
                loop.figures, loop.figures_at = figures, t


def _queue(keys: str, steps: list[tuple[int, int]]) -> tuple[QueueConfig, Config]:
    steps_text = ", ".join(f"{{depth: {d}, loops: {n}}}" for d, n in steps)
    text = f"queues:\n  q: {{queue: q, handler: m.h, {keys}, scale_steps: [{steps_text}]}}\n"
    config = parse_config(text, source="bench-limit-cap")
    return config.queues["q"], config


@dataclass
class Run:
    loop_s: float
    seconds: int
    handed: float
    caught_up_s: int | None = None  # after the slowdown: seconds until the loops it now needs work


def simulate(
    queue: QueueConfig, config: Config, backlog: int, pace: float, *, cap: bool, slow_at_s: int | None = None
) -> Run:
    """Drain ``backlog`` at the queue's rate limit; ``pace``: one loop's unwaited records a second (divided
    by 5 from ``slow_at_s`` on). The queue's ``min_loops`` loops were resting when the backlog came."""
    limit = float(limit_of(queue) or 0)
    sim = Sim(queue, config, cap, left=float(backlog))
    sim.resize(queue.min_loops, -STEP_S // 2)
    run = Run(0.0, 0, 0.0)
    t = 0
    while sim.left > 0:
        now_pace = pace / 5 if slow_at_s is not None and t >= slow_at_s else pace
        if t % RESTART_S == 0:
            sim.decide(t, limit)
        sim.growth_checks(t, limit)
        slowed = slow_at_s is not None and t >= slow_at_s and run.caught_up_s is None
        if slowed and slow_at_s is not None and len(sim.loops) >= needed(queue, limit, now_pace):
            run.caught_up_s = t - slow_at_s
        sim.second(t, min(limit, len(sim.loops) * now_pace), now_pace)
        t += 1
    run.loop_s, run.seconds, run.handed = sim.loop_s, t, sim.handed
    return run


def needed(queue: QueueConfig, limit: float, pace: float) -> int:
    """The fewest loops that sustain ``limit`` at ``pace`` (no more than ``max_loops`` can be had)."""
    return min(queue.max_loops, math.ceil(limit / pace))


def measure_single() -> dict[str, Any]:
    """Per case, a backlog of 40,000 records and one of an hour at the limit, under both rules."""
    out: dict[str, Any] = {}
    for name, (keys, steps, backlog, pace) in CASES.items():
        queue, config = _queue(keys, steps)
        limit = float(queue.rate_limit or 0)
        for label, records in (("", backlog), ("-1h", int(limit * 3600))):
            minimum = needed(queue, limit, pace) * records / limit
            figures: dict[str, Any] = {"backlog": records, "minimum_loop_s": round(minimum)}
            for rule, cap in (("today", False), ("cap", True)):
                run = simulate(queue, config, records, pace, cap=cap)
                slow = simulate(queue, config, records, pace, cap=cap, slow_at_s=records // int(limit) // 2)
                figures[rule] = {
                    "loop_s": round(run.loop_s),
                    "loop_s_ratio": round(run.loop_s / minimum, 2),
                    "limit_use": round(run.handed / run.seconds / limit, 3),
                    "slow_handler_caught_up_s": slow.caught_up_s,
                }
            figures["saved_usd"] = round((figures["today"]["loop_s"] - figures["cap"]["loop_s"]) * GB_S, 4)
            out[name + label] = figures
    return out


def _lanes(sims: dict[str, Sim], paces: dict[str, float], now_ms: int) -> list[LaneRecord]:
    """One lane per queue with loops and work: it asks half again what its loops can do (poller/downstream:
    a loop that waits for turns asks for all it can get, one that keeps up for 1.5 x what it used)."""
    lanes = []
    for key, sim in sims.items():
        demand = 1.5 * len(sim.loops) * paces[key] if sim.left > 0 else 0.0
        q = sim.queue
        lanes.append(LaneRecord(f"{key}#sim", key, q.weight, q.priority, demand, demand, 0, now_ms, "sim"))
    return lanes


def simulate_shared(*, cap: bool, per_group: float = 7.5) -> dict[str, Any]:
    """docs/downstream.md's worked example: three stages on one 50/s vendor, fanning out."""
    config = parse_config(WORKED, source="bench-limit-cap-worked")
    fan_out: dict[str, tuple[str, float]] = {**WORKED_FAN_OUT, "groups": ("items", per_group)}
    sims = {key: Sim(queue, config, cap) for key, queue in config.queues.items()}
    sims["accounts"].left = 1000.0
    for sim in sims.values():
        sim.resize(sim.queue.min_loops, -STEP_S // 2)
    assert config.downstreams["vendor"].rate_limit == 50
    limit, t, minimum, floor, calls = 50.0, 0, 0.0, 0.0, 0.0
    while any(sim.left > 0 for sim in sims.values()):
        now_ms = t * 1000
        lanes = _lanes(sims, WORKED_PACE, now_ms)
        for key, sim in sims.items():
            share = share_of(sim.queue, [lane for lane in lanes if lane.queue != key], now_ms=now_ms) or 0.0
            if t % RESTART_S == 0:
                sim.decide(t, share, whole=limit)
            sim.growth_checks(t, share, whole=limit)
        lanes = _lanes(sims, WORKED_PACE, now_ms)
        got = allocate(lanes, limit, now_ms)
        for key, sim in sims.items():
            pace = WORKED_PACE[key]
            done = sim.second(t, min(got.get(f"{key}#sim", 0.0), len(sim.loops) * pace), pace)
            minimum += math.ceil(done / pace - 1e-9)
            floor += max(sim.queue.min_loops, math.ceil(done / pace - 1e-9))
            calls += done
            if key in fan_out:
                target, n = fan_out[key]
                sims[target].left += done * n
        t += 1
    loop_s = {key: round(sim.loop_s) for key, sim in sims.items()}
    total = sum(loop_s.values())
    return {
        "seconds": t,
        "calls": round(calls),
        "limit_use": round(calls / t / limit, 3),
        "loop_s": {**loop_s, "total": total},
        "needed_loop_s": round(minimum),  # loops that hand over what each queue handed over, each second
        "needed_with_min_loops_s": round(floor),  # the same, never below min_loops (the config's floor)
        "usd_a_night": round(total * GB_S, 4),
    }


def measure_shared() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, per_group in (("30k-items", 7.5), ("60k-items", 15.0)):
        today, capped_run = (
            simulate_shared(cap=False, per_group=per_group),
            simulate_shared(cap=True, per_group=per_group),
        )
        saved = (today["loop_s"]["total"] - capped_run["loop_s"]["total"]) * GB_S
        out[label] = {
            "today": today,
            "cap": capped_run,
            "loop_s_ratio": round(capped_run["loop_s"]["total"] / capped_run["needed_with_min_loops_s"], 2),
            "today_loop_s_ratio": round(today["loop_s"]["total"] / today["needed_with_min_loops_s"], 2),
            "saved_usd_a_night": round(saved, 4),
            "saved_usd_a_month": round(saved * NIGHTS, 3),
        }
    return out


def measure() -> dict[str, Any]:
    return {"single": measure_single(), "shared": measure_shared()}


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
