"""What the demo shows while it runs: a screen redrawn each second on a terminal, a line a second otherwise."""

from __future__ import annotations

from typing import Any, TextIO


def show_sample(out: TextIO, sample: dict[str, Any], *, sent: int, messages: int, revived: int, live: bool) -> None:
    rate = sample["processed"] / sample["t"] if sample["t"] else 0.0
    lines = [
        f"t={sample['t']:5.1f}s  sent {sent}/{messages}  processed {sample['processed']}  "
        f"({rate:.0f}/s)  vendor calls {sample['vendor_calls']}  revived {revived}"
    ]
    for key, q in sample["queues"].items():
        lines.append(
            f"  {key:10} depth {q['visible'] + q['in_flight']:4} (visible {q['visible']:4}, in flight {q['in_flight']:3})"
            f"  dlq {q['dlq']:2}  loops {q['loops']}{'+' + str(q['retiring']) + ' retiring' if q['retiring'] else ''}"
            f"  alarms {' '.join(a[:5] for a in q['alarms'])}"
        )
    if live:
        out.write("\x1b[H\x1b[J" + "\n".join(lines) + "\n")
    else:
        out.write(" | ".join(line.strip() for line in lines) + "\n")
    out.flush()
