"""AWS calls per message at full backlog, and per minute on an empty queue, for one sqs-loops loop and for
the 2016 recursive design, counted at the botocore level against the moto server, on simulated time
(bench/simtime.py)."""

from __future__ import annotations

from typing import Any

import boto3

from bench import aws
from bench.baselines import Recursive2016
from bench.handlers import noop
from bench.harness import BenchContext, bench_config, create_table, loop_services, next_step, run_step
from bench.simtime import simulate_long_polls
from poller.config import Config
from sandbox.clock import FakeClock

BACKLOG = 30
"""Messages kept in the queue at full backlog: every batch handled is sent again on an uncounted client
(moto walks the whole queue on every receive: a deep queue would measure moto)."""


def _refilling(feeder: Any, url: str, clock: FakeClock, batch_s: float) -> Any:
    def on_batch(records: list[Any]) -> None:
        clock.advance(batch_s)
        aws.fill(feeder, url, len(records))

    return on_batch


def sqs_loops_full_backlog(*, batch_ms: float, timeout_s: int) -> dict[str, Any]:
    """One invocation of ``timeout_s`` (fake) seconds on a queue that never empties; the handler takes
    ``batch_ms`` (fake) per batch of 10."""
    clock, counter = FakeClock(), aws.CallCounter()
    feeder = aws.sqs_client()
    url = aws.create_queue(feeder, "full-backlog")
    aws.fill(feeder, url, BACKLOG)
    config = bench_config(url, poller=f"poller: {{timeout_s: {timeout_s}}}")
    services = loop_services(clock=clock, counter=counter)
    simulate_long_polls(services.sqs_client, clock)
    step = _token(services, url)
    counter.calls.clear()  # creating the token is the scaler's call, not the loop's
    context = BenchContext(timeout_s, clock=clock, on_batch=_refilling(feeder, url, clock, batch_ms / 1000))
    outcome = run_step(step, config, services, context)
    assert outcome.failed == 0 and outcome.recursed, outcome
    return _per_message(counter, outcome.succeeded, {"batch_ms": batch_ms, "invocation_s": timeout_s})


def sqs_loops_idle(*, minutes: float, timeout_s: int = 900) -> dict[str, Any]:
    """Loop steps one after another, as the recursion would run them, on an empty queue for ``minutes``."""
    clock, counter = FakeClock(), aws.CallCounter()
    url = aws.create_queue(aws.sqs_client(), "idle")
    config: Config = bench_config(url, poller=f"poller: {{timeout_s: {timeout_s}}}")
    services = loop_services(clock=clock, counter=counter)
    simulate_long_polls(services.sqs_client, clock)
    step = _token(services, url)
    counter.calls.clear()
    steps = 0
    while clock.monotonic() < minutes * 60:
        outcome = run_step(step, config, services, BenchContext(timeout_s, clock=clock, on_batch=None))
        steps += 1
        following = next_step(services)
        assert following is not None, outcome
        step = following
    return _per_minute(
        counter, clock, {"invocations": steps, "invocation_s": timeout_s, "heartbeat_s": config.poller.heartbeat_s}
    )


def _token(services: Any, url: str) -> Any:
    from poller.lease.step import LoopStep

    services.tokens.create(url, "slot-1", loop_id="loop-bench", now_ms=0)
    return LoopStep(url, "slot-1", "loop-bench", 0)


def _recursive2016(clock: FakeClock, counter: aws.CallCounter, url: str) -> tuple[Recursive2016, list[Any]]:
    pending: list[Any] = []

    def invoke(payload: dict[str, Any]) -> None:
        counter.add("lambda.Invoke")
        pending.append(payload)

    sqs = counter.watch(aws.sqs_client())
    simulate_long_polls(sqs, clock)
    dynamodb = counter.watch(boto3.client("dynamodb", region_name=aws.REGION))
    create_table().create(url, "slot-1", loop_id="loop-2016", now_ms=0)
    return Recursive2016(sqs, dynamodb, invoke, noop, clock), pending


def recursive2016_full_backlog(*, batch_ms: float, steps: int) -> dict[str, Any]:
    clock, counter = FakeClock(), aws.CallCounter()
    feeder = aws.sqs_client()
    url = aws.create_queue(feeder, "full-backlog-2016")
    aws.fill(feeder, url, BACKLOG)
    poller, pending = _recursive2016(clock, counter, url)
    counter.calls.clear()
    event: dict[str, Any] = {"queue_url": url, "token": "slot-1", "loop_id": "loop-2016"}
    context = BenchContext(900, clock=clock, on_batch=_refilling(feeder, url, clock, batch_ms / 1000))
    handled = 0
    for _ in range(steps):
        handled += poller.step(event, context)
        event = pending.pop()
    return _per_message(counter, handled, {"batch_ms": batch_ms, "invocations": steps})


def recursive2016_idle(*, minutes: float) -> dict[str, Any]:
    clock, counter = FakeClock(), aws.CallCounter()
    url = aws.create_queue(aws.sqs_client(), "idle-2016")
    poller, pending = _recursive2016(clock, counter, url)
    counter.calls.clear()
    event: dict[str, Any] = {"queue_url": url, "token": "slot-1", "loop_id": "loop-2016"}
    steps = 0
    while clock.monotonic() < minutes * 60:
        poller.step(event, BenchContext(900, clock=clock, on_batch=None))
        event = pending.pop()
        steps += 1
    return _per_minute(counter, clock, {"invocations": steps})


def _per_message(counter: aws.CallCounter, processed: int, setup: dict[str, Any]) -> dict[str, Any]:
    return {
        "calls_per_message": round(counter.total() / processed, 4),
        "messages": processed,
        "calls": dict(sorted(counter.calls.items())),
        **setup,
    }


def _per_minute(counter: aws.CallCounter, clock: FakeClock, setup: dict[str, Any]) -> dict[str, Any]:
    minutes = clock.monotonic() / 60
    return {
        "idle_calls_per_minute": round(counter.total() / minutes, 3),
        "minutes": round(minutes, 2),
        "calls": dict(sorted(counter.calls.items())),
        **setup,
    }
