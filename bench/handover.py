"""``python -m bench.handover [--steps N]``: how soon an idle queue's share reaches the busy one, simulated
(sandbox/share_sim.py: the real Turns on an injected clock). ``items`` (weight 3) runs dry while ``groups``
(weight 1) keeps a backlog, at moments moved through a refresh period in ``steps`` of 0.5 s; the handover is
the time from the dry moment until ``groups`` uses 90 % of the limit over the next second. Prints each
handover, their median and the most messages in any 5 s over the limit (docs/downstream.md, "Gifts")."""

from __future__ import annotations

import argparse
import json
import statistics

from poller.config.shared import Downstream
from sandbox.share_sim import LoopPlan, QueuePlan, Simulation

VENDOR = Downstream(name="vendor", rate_limit=50.0)


def handover_s(dry: float, seed: int = 5) -> tuple[float, float]:
    """Seconds from ``items`` running dry until ``groups`` has 90 % of the limit; the run's max 5-s ratio."""
    queues = {"groups": QueuePlan(weight=1), "items": QueuePlan(weight=3, backlog=((0, dry), (dry + 40, 200)))}
    loops = [LoopPlan("groups", 0, 200, "t1"), LoopPlan("groups", 0, 200, "t2"), LoopPlan("items", 10, 200, "t1")]
    result = Simulation(VENDOR, queues, loops, seed=seed).run(dry + 20)
    wait = next(n / 10 for n in range(200) if result.used(dry + n / 10, dry + n / 10 + 1, "groups") >= 0.9)
    return wait, result.max_ratio_5s()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    runs = [handover_s(60 + k * 0.5) for k in range(args.steps)]
    waits = [wait for wait, _ in runs]
    print(
        json.dumps(
            {
                "handover_s": waits,
                "median_s": statistics.median(waits),
                "max_s": max(waits),
                "max_ratio_5s": round(max(ratio for _, ratio in runs), 4),
            }
        )
    )


if __name__ == "__main__":
    main()
