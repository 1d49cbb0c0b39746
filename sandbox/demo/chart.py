"""The demo's chart: the vendor's calls a second against the shared limit, then queue depth and loop count
over time per queue, with scale events marked."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any


def write_chart(
    samples: list[dict[str, Any]],
    events: list[dict[str, Any]],
    path: Path,
    queues: list[str],
    limits: dict[str, float] | None = None,
) -> None:
    """``limits``: the shared downstreams' rate limits (drawn against the vendor's calls a second)."""
    import matplotlib

    matplotlib.use("Agg")  # no screen needed
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    rows = len(queues) + 1
    figure, axes = plt.subplots(rows, 1, figsize=(10, 3.2 * rows), sharex=True, squeeze=False)
    vendor = axes[0, 0]
    pairs = list(itertools.pairwise(samples))
    rates = [(b["vendor_calls"] - a["vendor_calls"]) / max(1e-6, b["t"] - a["t"]) for a, b in pairs]
    vendor.plot([b["t"] for _, b in pairs], rates, color="tab:blue", label="vendor calls a second (all stages)")
    for name, limit in (limits or {}).items():
        vendor.axhline(limit, color="tab:red", linestyle="--", label=f"{name} rate_limit ({limit:g}/s)")
    vendor.set_ylabel("calls a second")
    vendor.set_title("the vendor API: calls a second against the shared limit")
    vendor.legend(loc="upper right", fontsize="small")
    for ax, key in zip(axes[1:, 0], queues, strict=True):
        times = [s["t"] for s in samples]
        depth = [s["queues"][key]["visible"] + s["queues"][key]["in_flight"] for s in samples]
        dlq = [s["queues"][key]["dlq"] for s in samples]
        loops = [s["queues"][key]["loops"] for s in samples]
        ax.plot(times, depth, color="tab:blue", label="depth (visible + in flight)")
        ax.plot(times, dlq, color="tab:red", linestyle=":", label="dead-letter queue")
        ax.set_ylabel("messages")
        ax.set_title(f"queue {key}")
        twin = ax.twinx()
        twin.step(times, loops, where="post", color="tab:green", label="loops")
        twin.set_ylabel("loops")
        twin.set_ylim(0, max([*loops, 1]) + 1)
        for event in (e for e in events if e["queue"] == key):
            colour = {"up": "tab:orange", "down": "tab:purple", "revived": "tab:red"}.get(event["direction"], "grey")
            ax.axvline(event["t"], color=colour, alpha=0.5, linewidth=1)
        handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="upper right", fontsize="small")
    axes[-1, 0].set_xlabel("seconds (vertical lines: orange scale-up, purple scale-down, red revival)")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
