"""`sqs-loops logs QUEUE [--since 10m] [--follow]`: one queue's log lines, from CloudWatch Logs (the
functions' log groups) on AWS or from a sandbox's log file, pretty-printed (or as JSON with ``--json``)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from poller.metrics import ALL_METRICS, DEPLOYMENT

FUNCTIONS = ("poller", "restart", "scaleUp", "scaleDown")
"""The stack's functions (serverless.yml): their log groups are /aws/lambda/<prefix>-<function>."""
FOLLOW_POLL_S = 2.0
"""How often --follow looks for new lines: CloudWatch Logs shows a line a few seconds after it is written."""
_SINCE = re.compile(r"^([0-9]+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_LEVEL_STYLE = {"debug": "dim", "info": "green", "warn": "yellow", "warning": "yellow", "error": "bold red"}
# Members a person does not need to read: the EMF block, its dimension and its metric copies of the fields.
_QUIET = {"_aws", "level", "event", "queue", DEPLOYMENT, *(m.name for m in ALL_METRICS)}


def parse_since(text: str) -> float:
    """``10m`` -> 600.0 seconds (s, m, h or d)."""
    match = _SINCE.match(text.strip())
    if not match:
        raise ValueError(f"--since: expected a number and a unit (s, m, h or d), like 10m, got {text!r}")
    return int(match[1]) * _UNIT_S[match[2]]


def queue_lines(lines: Iterator[tuple[float | None, str]], queue: str) -> Iterator[tuple[float | None, dict[str, Any]]]:
    """The JSON lines of ``queue`` among (epoch seconds or None, raw line); other lines are skipped."""
    for at, raw in lines:
        start = raw.find("{")
        if start < 0:
            continue
        try:
            line = json.loads(raw[start:])
        except ValueError:
            continue
        if isinstance(line, dict) and line.get("queue") == queue:
            yield at, line


def file_lines(
    path: Path, *, since_s: float, follow: bool, sleep: Callable[[float], None] = time.sleep
) -> Iterator[tuple[float | None, str]]:
    """Lines of a sandbox's log file (each ``<UTC time> <JSON>``, see sandbox/demo/trace.py) written
    within ``since_s``; with ``follow``, new lines as they come. A line without a time is kept."""
    if not path.exists():
        raise ValueError(f"{path}: no such log file (a sandbox or demo run writes one; give --file)")
    oldest = time.time() - since_s
    with path.open(encoding="utf-8", errors="replace") as handle:
        while True:
            line = handle.readline()
            if not line:
                if not follow:
                    return
                sleep(FOLLOW_POLL_S / 4)
                continue
            at = _written_at(line)
            if at is None or at >= oldest:
                yield at, line.rstrip("\n")


def _written_at(line: str) -> float | None:
    stamp = line.split(" ", 1)[0]
    try:
        return datetime.fromisoformat(stamp).timestamp() if stamp[:1].isdigit() else None
    except ValueError:
        return None


def cloudwatch_lines(
    logs: Any,
    prefix: str,
    queue: str,
    *,
    since_s: float,
    follow: bool,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[tuple[float | None, str]]:
    """The queue's lines from the functions' log groups (FilterLogEvents with a JSON filter on ``queue``),
    oldest first; with ``follow``, polls for newer ones."""
    start_ms = int((time.time() - since_s) * 1000)
    pattern = '{ $.queue = "' + queue.replace('"', "") + '" }'
    seen: set[str] = set()
    while True:
        found = []
        for function in FUNCTIONS:
            group = f"/aws/lambda/{prefix}-{function}"
            kwargs: dict[str, Any] = {"logGroupName": group, "startTime": start_ms, "filterPattern": pattern}
            while True:
                try:
                    page = logs.filter_log_events(**kwargs)
                except logs.exceptions.ResourceNotFoundException:
                    break  # a function that never ran has no log group yet
                found += [e for e in page.get("events", []) if e["eventId"] not in seen]
                if not page.get("nextToken"):
                    break
                kwargs["nextToken"] = page["nextToken"]
        for event in sorted(found, key=lambda e: e["timestamp"]):
            seen.add(event["eventId"])
            start_ms = max(start_ms, event["timestamp"])
            yield event["timestamp"] / 1000, event["message"]
        if not follow:
            return
        sleep(FOLLOW_POLL_S)


def pretty(at: float | None, line: dict[str, Any], *, colour: bool) -> Text:
    """``12:00:01 info  batch  token=slot-0001 received=10 ...`` (time from the log event, when known)."""
    level = str(line.get("level", "info"))
    text = Text()
    if at is not None:
        text.append(datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S "), style="dim" if colour else "")
    text.append(f"{level:7} ", style=_LEVEL_STYLE.get(level, "") if colour else "")
    text.append(f"{line.get('event', '?')}", style="bold" if colour else "")
    for key, value in line.items():
        if key in _QUIET:
            continue
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
        text.append(f"  {key}=", style="cyan" if colour else "")
        text.append(shown)
    return text


def show_logs(out: Console, lines: Iterator[tuple[float | None, dict[str, Any]]], *, as_json: bool) -> int:
    """Print each line; returns how many were printed."""
    count = 0
    for at, line in lines:
        if as_json:
            out.file.write(json.dumps(line) + "\n")
            out.file.flush()
        else:
            out.print(pretty(at, line, colour=out.is_terminal), soft_wrap=True)
        count += 1
    return count


def counts_from_file(path: Path, *, window_s: float = 60.0) -> dict[str, dict[str, float]]:
    """Per queue: messages handled and failed in the last ``window_s`` seconds, summed from the batch
    lines of a sandbox's log file (where no CloudWatch turns them into metrics)."""
    found: dict[str, dict[str, float]] = {}
    for _, raw in file_lines(path, since_s=window_s, follow=False):
        start = raw.find("{")
        try:
            line = json.loads(raw[start:]) if start >= 0 else None
        except ValueError:
            continue
        if isinstance(line, dict) and line.get("event") == "batch" and isinstance(line.get("queue"), str):
            counts = found.setdefault(line["queue"], {"handled_a_minute": 0, "failed_a_minute": 0})
            counts["handled_a_minute"] += line.get("succeeded", 0)
            counts["failed_a_minute"] += line.get("failed", 0)
    return found
