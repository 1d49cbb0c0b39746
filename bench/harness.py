"""What every benchmark of the sqs-loops loop needs: its config, its services as the Lambda entry point
builds them (``poller.handler._services``: the production clients and their timeouts), a context that can
stop a step, and an invoker that records the recursion instead of starting a Lambda."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bench.aws import TABLE, CallCounter
from poller.clock import SYSTEM_CLOCK, Clock
from poller.config import Config, parse_config
from poller.lease.step import LoopStep
from poller.lease.tokens import TokenStore, bind_token_table
from poller.logs import LOGGER
from poller.loop.run import Loop, Outcome
from poller.loop.services import LoopServices
from poller.timing import RECURSE_RESERVE_S

FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:sqs-loops-bench-poller"
PRODUCTION_POLLER = "poller: {timeout_s: 900}"
"""The settings a deployment gets by default (docs/config.md): the heartbeat is the default's."""


def bench_config(
    queue_url: str, *, poller: str = PRODUCTION_POLLER, handler: str = "bench.handlers.noop", **settings: object
) -> Config:
    lines = "".join(f"    {k}: {v}\n" for k, v in settings.items())
    text = f"{poller}\nqueues:\n  bench:\n    queue: {queue_url}\n    handler: {handler}\n{lines}"
    return parse_config(text, source="bench")


class BenchContext:
    """A Lambda context whose deadline counts down on ``clock``; ``stop()`` makes it now, as the Lambda
    runtime's timeout would (the loop then finishes its batch and recurses)."""

    STOP_LEFT_S = RECURSE_RESERVE_S + 1.0
    """What ``stop()`` leaves: no room for another batch, room for the last delete and the recursion (with
    none, the last delete was abandoned and the trial's count of handled messages raced it)."""

    def __init__(self, budget_s: float, *, clock: Clock = SYSTEM_CLOCK, on_batch: Callable[[list[Any]], None] | None):
        self.clock = clock
        self.end = clock.monotonic() + budget_s
        self.on_batch = on_batch
        self.invoked_function_arn = FUNCTION_ARN
        self.function_name = "sqs-loops-bench-poller"
        self.aws_request_id = "bench"
        self.memory_limit_in_mb = 256

    def stop(self) -> None:
        self.end = min(self.end, self.clock.monotonic() + self.STOP_LEFT_S)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.end - self.clock.monotonic()) * 1000))


class RecordingInvoker:
    """Lambda's async Invoke, recorded (and counted as the one API call it is) instead of started: the
    benchmark runs the next step itself when it wants one."""

    def __init__(self, counter: CallCounter | None = None):
        self.counter = counter
        self.payloads: list[dict[str, Any]] = []

    def invoke_async(self, function: str, payload: dict[str, Any]) -> None:
        if self.counter is not None:
            self.counter.add("lambda.Invoke")
        self.payloads.append(payload)


def quiet_logs() -> None:
    """The loop's JSON lines are formatted and written as in Lambda, to /dev/null instead of CloudWatch."""
    LOGGER.handlers[:] = [logging.StreamHandler(open(os.devnull, "w"))]  # noqa: SIM115 (lives as long as the process)
    LOGGER.propagate = False
    LOGGER.setLevel(logging.INFO)


def create_table() -> TokenStore:
    model = bind_token_table(TABLE, region="us-east-1")
    if not model.exists():
        model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
    return TokenStore(model)


def loop_services(*, clock: Clock = SYSTEM_CLOCK, counter: CallCounter | None = None) -> LoopServices:
    """The entry point's services, with the recording invoker, a seeded random and ``clock``; with a
    ``counter``, every SQS and DynamoDB call is counted."""
    import poller.handler

    poller.handler._services.cache_clear()
    bind_token_table.cache_clear()
    services = poller.handler._services()
    invoker = RecordingInvoker(counter)
    if counter is not None:
        counter.watch(services.sqs_client)
        counter.watch(services.tokens.model._get_connection().connection.client)
    # As deployed, loops may ask scale_up for growth: the depth checks that costs are counted (the bench's
    # queue has no steps, so no request is ever sent).
    services = replace(
        services, invoker=invoker, clock=clock, rand=random.Random(7), scale_up_function="sqs-loops-bench-scaleUp"
    )
    if counter is not None:
        # Counted runs receive through the one watched client (whose long polls simulate_long_polls turns
        # into fake time): the entry point's receive clients, one per wait, were neither counted nor
        # simulated, and calls_per_message missed every receive.
        services = replace(services, sqs_receive_client=None)
    return services


def run_step(step: LoopStep, config: Config, services: LoopServices, context: BenchContext) -> Outcome:
    loop = Loop(
        step,
        queue=config.queue("bench"),
        settings=config.poller,
        services=services,
        context=context,
        function=FUNCTION_ARN,
    )
    return loop.run()


def next_step(services: LoopServices) -> LoopStep | None:
    """The step the last invocation asked for, if it asked."""
    invoker = services.invoker
    assert isinstance(invoker, RecordingInvoker)
    if not invoker.payloads:
        return None
    return LoopStep.parse(invoker.payloads.pop())
