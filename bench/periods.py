"""In the sandbox (the whole system: alarms, scale_up, restart, loops in a local Lambda runtime), how many
periods the control plane takes: from a backlog crossing a scale step to the wanted loops working
(``scale_up_periods``, in alarm periods), and from a crashed loop to its token working again
(``revive_periods``, in restart periods). Periods, not seconds: the sandbox compresses them (3 s and 4 s
here, 60 s on AWS), and the count is what carries over."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from bench import aws
from poller.lease.tokens import TokenState, TokenStore, bind_token_table
from sandbox.environment import Sandbox, Timings

ROOT = Path(__file__).resolve().parents[1]
CONFIG = Path(__file__).with_name("sandbox_queues.yml")
POLL_S = 0.1
WAIT_LIMIT_S = 60.0


def _until(what: str, check: Callable[[], bool], limit_s: float = WAIT_LIMIT_S) -> float:
    """Polls ``check`` until true; returns the monotonic time it first was."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if check():
            return time.monotonic()
        time.sleep(POLL_S)
    raise TimeoutError(f"sandbox benchmark: {what} did not happen within {limit_s:g} s")


def measure(*, cycles: int) -> dict[str, Any]:
    timings = Timings()
    scale_up: list[float] = []
    revive: list[float] = []
    with Sandbox(CONFIG, prefix="sqs-loops-bench", timings=timings, root=ROOT) as box:
        url = box.queue_url("bench")
        step = box.config.queue("bench").scale_steps[0]
        sqs = boto3.client("sqs", region_name=box.region)
        tokens = TokenStore(bind_token_table(f"{box.prefix}-tokens", region=box.region))

        def working() -> list[TokenState]:
            return [r for r in tokens.tokens_of(url) if not r.retiring and r.generation >= 1 and r.last_error is None]

        box.run_restart()
        _until("the first loop", lambda: len(working()) == 1)
        for _ in range(cycles):
            revive.append(_revive(box, url, tokens, working) / timings.restart_period_s)
            scale_up.append(_scale_up(sqs, url, step.depth, step.loops, working) / timings.alarm_period_s)
            _until(
                "the scale-down after the backlog",
                lambda: aws.depth(sqs, url) == 0 and len(list(tokens.tokens_of(url))) == 1,
                90,
            )
    return {
        "scale_up_periods": round(statistics.median(scale_up), 2),
        "revive_periods": round(statistics.median(revive), 2),
        "scale_up_runs": [round(p, 2) for p in scale_up],
        "revive_runs": [round(p, 2) for p in revive],
        "alarm_period_s": timings.alarm_period_s,
        "restart_period_s": timings.restart_period_s,
        "stale_after_s": box.config.stale_after_s,
    }


def _revive(box: Sandbox, url: str, tokens: TokenStore, working: Callable[[], list[TokenState]]) -> float:
    """Crash the working loop; seconds until a new loop owns its token and has claimed it."""
    token = _wait_for_one(working).token
    crashed_at = time.monotonic()
    if not box.runtime.crash(url, token):
        raise RuntimeError(f"sandbox benchmark: no running step on {token} to crash")
    dead = tokens.get(url, token)  # the crashed loop claims nothing more
    assert dead is not None

    def revived() -> bool:
        # restart's takeover moves the generation on by one, the new loop's claim by one more
        now = tokens.get(url, token)
        return now is not None and now.loop_id != dead.loop_id and now.generation >= dead.generation + 2

    return _until("the revival", revived) - crashed_at


def _wait_for_one(working: Callable[[], list[TokenState]]) -> TokenState:
    rows: list[TokenState] = []

    def one() -> bool:
        rows[:] = working()
        return len(rows) == 1

    _until("one working loop", one)
    return rows[0]


def _scale_up(sqs: Any, url: str, depth: int, loops: int, working: Callable[[], list[TokenState]]) -> float:
    """Send a backlog crossing the step; seconds from the crossing until ``loops`` loops work."""
    aws.fill(sqs, url, depth)
    crossed_at = time.monotonic()
    aws.fill(sqs, url, 4 * depth, prefix="more")
    return _until("the scale-up", lambda: len(working()) >= loops) - crossed_at
