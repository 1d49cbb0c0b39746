"""What the demo shows while it runs: a rich live table redrawn each second on a terminal, a plain line a
second otherwise."""

from __future__ import annotations

from typing import Any, TextIO

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text


class DemoView:
    """The live view of one demo run (close it when the run ends)."""

    def __init__(self, out: TextIO, *, live: bool):
        self.out = out
        self.live: Live | None = None
        if live:
            self.live = Live(console=Console(file=out, force_terminal=True), auto_refresh=False)
            self.live.start()

    def show(self, sample: dict[str, Any], *, sent: int, messages: int, revived: int) -> None:
        rate = sample["processed"] / sample["t"] if sample["t"] else 0.0
        head = (
            f"t={sample['t']:5.1f}s  sent {sent}/{messages}  processed {sample['processed']}  "
            f"({rate:.0f}/s)  vendor calls {sample['vendor_calls']}  revived {revived}"
        )
        run = sample.get("run")
        if run:
            head += f"  run {run['done'] + run['failed']}/{run['total']} ({run['state']})"
        if self.live is None:
            parts = [head] + [
                f"{key} depth {q['visible'] + q['in_flight']} (visible {q['visible']}, in flight {q['in_flight']})"
                f"  dlq {q['dlq']}  loops {q['loops']}{'+' + str(q['retiring']) + ' retiring' if q['retiring'] else ''}"
                f"  alarms {' '.join(a[:5] for a in q['alarms'])}"
                for key, q in sample["queues"].items()
            ]
            self.out.write(" | ".join(parts) + "\n")
            self.out.flush()
            return
        grid = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for number, name in enumerate(("queue", "depth", "visible", "in flight", "dlq", "loops", "alarms")):
            grid.add_column(name, justify="left" if number in (0, 6) else "right")
        for key, q in sample["queues"].items():
            loops = f"{q['loops']}" + (f" +{q['retiring']} retiring" if q["retiring"] else "")
            alarms = Text(" ".join(a[:5] for a in q["alarms"]), style="red" if "ALARM" in q["alarms"] else "")
            grid.add_row(
                key,
                *(str(v) for v in (q["visible"] + q["in_flight"], q["visible"], q["in_flight"])),
                str(q["dlq"]),
                loops,
                alarms,
            )
        shown: list[Any] = [Text(head, style="bold"), grid]
        if run and run["total"]:
            shown.append(ProgressBar(total=run["total"], completed=run["done"] + run["failed"], width=60))
        self.live.update(Group(*shown), refresh=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
