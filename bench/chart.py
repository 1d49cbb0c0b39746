"""The benchmarks' chart (docs/img/benchmarks.png): AWS calls per message and per idle minute, sqs-loops
against the 2016 recursive design, and the loop's throughput against a hand-written boto3 loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = results["baseline_2016"]
    thr = results["details"]["throughput"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    panels = [
        ("AWS calls per message\n(full backlog)", [results["calls_per_message"], base["calls_per_message"]], 0.22),
        (
            "AWS calls per minute\n(empty queue, one loop)",
            [results["idle_calls_per_minute"], base["idle_calls_per_minute"]],
            4.0,
        ),
    ]
    for ax, (title, values, target) in zip(axes[:2], panels, strict=True):
        bars = ax.bar(["sqs-loops", "2016 design"], values, color=["#2a7ab9", "#b0b0b0"])
        ax.axhline(target, color="#c0392b", linestyle="--", linewidth=1, label=f"target {target:g}")
        ax.bar_label(bars, fmt="%.3g")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, loc="upper left")
    bars = axes[2].bar(
        ["sqs-loops", "hand-written\nboto3 loop"],
        [thr["sqs_loops_msgs_per_s"], thr["hand_written_msgs_per_s"]],
        color=["#2a7ab9", "#7fb77e"],
    )
    axes[2].bar_label(bars, fmt="%.0f")
    axes[2].set_title(f"messages/s against moto (ratio {results['throughput_ratio']:.2f})", fontsize=10)
    fig.suptitle(f"sqs-loops benchmarks, {results['run']['date']}", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
