"""``python -m bench.shared_downstream [--minutes N] [--seed S]``: a shared downstream simulated for a long
time (sandbox/share_sim.py: the real Turns on an injected clock): three weighted queues and one of a higher
priority, whose backlogs and loops come and go at random. Prints the figures docs/downstream.md quotes:
the most messages in any 5 s over the limit, the share used in 30-s windows with a steady backlog, the
queues' shares against their weights, and coordination calls per message."""

from __future__ import annotations

import argparse
import json
import random
import time

from poller.config.shared import Downstream
from sandbox.share_sim import LoopPlan, QueuePlan, Simulation

STAGES = {"groups": 1.0, "items": 2.0, "fetch": 3.0}


def scenario(minutes: float, seed: int) -> tuple[dict[str, QueuePlan], list[LoopPlan], list[tuple[float, float]]]:
    """Each stage backlogged for the whole run, with loops that come and go every few minutes; an urgent
    queue (priority 1) backlogged now and then. Returns the quiet windows: urgent idle, no loop change."""
    rand = random.Random(seed)
    end = minutes * 60
    queues = {name: QueuePlan(weight=weight) for name, weight in STAGES.items()}
    bursts, at = [], 120.0
    while at < end:
        bursts.append((at, at + rand.uniform(20, 60)))
        at = bursts[-1][1] + rand.uniform(120, 300)
    queues["urgent"] = QueuePlan(priority=1, backlog=tuple(bursts))
    loops: list[LoopPlan] = [LoopPlan("urgent", 0, end, "t0")]
    changes = [0.0]
    for name in STAGES:
        loops.append(LoopPlan(name, 0, end, "t0"))
        at, n = 0.0, 1
        while at < end:  # a second loop now and then (a scale-up), gone again later (a scale-down or a crash)
            start = at + rand.uniform(30, 240)
            stop = start + rand.uniform(30, 240)
            loops.append(LoopPlan(name, start, stop, f"t{n}"))
            changes += [start, stop]
            at, n = stop, n + 1
    busy = sorted([(a, b) for a, b in bursts] + [(c, c + 30) for c in changes] + [(end, end)])
    quiet, last = [], 30.0
    for a, b in busy:  # windows of 30 s away from any burst or loop change (30 s settling after each)
        while last + 30 <= a:
            quiet.append((last, last + 30))
            last += 30
        last = max(last, b + 30)
    return queues, loops, [w for w in quiet if w[1] <= end]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=50.0)
    args = parser.parse_args()
    queues, loops, quiet = scenario(args.minutes, args.seed)
    started = time.perf_counter()
    result = Simulation(Downstream(name="vendor", rate_limit=args.rate), queues, loops, seed=args.seed).run(
        args.minutes * 60
    )
    shares = []
    for a, b in quiet:
        total = sum(result.used(a, b, q) for q in STAGES)
        busy = [q for q in STAGES if any(p.queue == q and p.start_s <= a and p.stop_s >= b for p in loops)]
        weights = sum(STAGES[q] for q in busy)
        shares += [abs(result.used(a, b, q) / total / (STAGES[q] / weights) - 1) for q in busy if total > 0]
    print(
        json.dumps(
            {
                "simulated_minutes": args.minutes,
                "wall_s": round(time.perf_counter() - started, 1),
                "messages": result.messages(),
                "max_ratio_5s": round(result.max_ratio_5s(), 4),
                "min_used_30s_steady": round(min(result.used(a, b) for a, b in quiet), 4),
                "mean_used_30s_steady": round(sum(result.used(a, b) for a, b in quiet) / len(quiet), 4),
                "worst_weight_error": round(max(shares), 4),
                "state_calls_per_message": round(result.calls_per_message(), 4),
                "steady_windows": len(quiet),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
