"""In the sandbox, side by side: the depth path (restart and scale_up read the depth, loops ask for growth)
and the alarm-only path (``poller.depth_reads: false``), on a queue that rests (``min_loops: 0``):

- ``wake_s``: one message sent to the resting queue until it is handled (deleted); below the first step
  no alarm ever fires, so on the alarm-only path it is stranded (None);
- ``grow_s``: a backlog crossing the step (40) sent to the queue with one loop, until the step's 3 loops
  work (claimed a step);
- ``grow_by_loops_s``: the same with restart and the alarms kept out (a restart period of 60 s, a metric
  lag of 60 s): only the loops' own growth requests can act.

Seconds of the sandbox, and periods: wake in restart periods, growth in alarm periods."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import boto3

from bench import aws
from bench.periods import _until
from poller.lease.tokens import TokenState, TokenStore, bind_token_table
from sandbox.environment import Sandbox, Timings

ROOT = Path(__file__).resolve().parents[1]
DEPTH_PATH = Path(__file__).with_name("wake_queues.yml")
ALARM_ONLY = Path(__file__).with_name("wake_queues_alarm_only.yml")
STRANDED_AFTER_S = 20.0
"""How long the alarm-only path is given to wake a queue below its first step (5 restart periods)."""


def measure() -> dict[str, Any]:
    timings = Timings()
    out: dict[str, Any] = {"alarm_period_s": timings.alarm_period_s, "restart_period_s": timings.restart_period_s}
    for name, config in (("depth", DEPTH_PATH), ("alarm_only", ALARM_ONLY)):
        with Sandbox(config, prefix=f"sqs-loops-wake-{name.replace('_', '-')}", timings=timings, root=ROOT) as box:
            out[name] = _wake_and_grow(box, timings)
    quiet = Timings(restart_period_s=60.0, metric_lag_s=60.0)
    with Sandbox(DEPTH_PATH, prefix="sqs-loops-wake-loops", timings=quiet, root=ROOT) as box:
        url, sqs, working = _probes(box)
        aws.fill(sqs, url, 1)
        box.run_restart()  # the one restart: it wakes the queue
        _until("the first loop", lambda: len(working()) == 1)
        out["depth"]["grow_by_loops_s"] = round(_grow(sqs, url, working), 2)
    for path in ("depth", "alarm_only"):
        figures = out[path]
        figures["wake_periods"] = _periods(figures["wake_s"], timings.restart_period_s)
        figures["grow_periods"] = _periods(figures["grow_s"], timings.alarm_period_s)
    return out


def _periods(seconds: float | None, period_s: float) -> float | None:
    return None if seconds is None else round(seconds / period_s, 2)


def _probes(box: Sandbox) -> tuple[str, Any, Any]:
    url = box.queue_url("wake")
    sqs = boto3.client("sqs", region_name=box.region)
    tokens = TokenStore(bind_token_table(f"{box.prefix}-tokens", region=box.region))

    def working() -> list[TokenState]:
        return [r for r in tokens.tokens_of(url) if not r.retiring and r.generation >= 1 and r.last_error is None]

    working.tokens = tokens  # type: ignore[attr-defined]
    return url, sqs, working


def _wake_and_grow(box: Sandbox, timings: Timings) -> dict[str, Any]:
    url, sqs, working = _probes(box)
    box.run_restart()
    time.sleep(timings.restart_period_s)  # a restart or two on the empty queue: it rests
    sent_at = time.monotonic()
    aws.fill(sqs, url, 1)
    try:
        wake: float | None = _until("the wake", lambda: aws.depth(sqs, url) == 0, STRANDED_AFTER_S) - sent_at
    except TimeoutError:
        wake = None  # stranded: below the first step no alarm fires
        aws.fill(sqs, url, 40, prefix="wake")  # a step's depth: the alarm path wakes it
        _until("the alarm's wake", lambda: len(working()) >= 1)
        _until("the wake backlog handled", lambda: aws.depth(sqs, url) == 0)
        # The alarm woke the step's 3 loops: growth is measured from rest, once the cool-down ends.
        _until("back to rest", lambda: not list(working.tokens.tokens_of(url)), 60)
    else:
        _until("one loop", lambda: len(working()) >= 1)
    return {"wake_s": None if wake is None else round(wake, 2), "grow_s": round(_grow(sqs, url, working), 2)}


def _grow(sqs: Any, url: str, working: Any) -> float:
    """A backlog crossing the step (40, wanting 3 loops), fed on: seconds until 3 loops work."""
    aws.fill(sqs, url, 40)
    crossed_at = time.monotonic()
    aws.fill(sqs, url, 120, prefix="more")
    return _until("the growth", lambda: len(working()) >= 3) - crossed_at
