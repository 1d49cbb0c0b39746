"""Lambda entry point of the loop function: ``poller.handler.handler``.

Config, clients and the token model are made on first use and kept for the warm container; importing
this module makes no AWS client and reads no file, so a cold start pays only for what runs.
"""

from __future__ import annotations

import os
import random
from functools import cache, partial
from typing import Any

from poller.aws.clients import (
    ClientOnFirstUse,
    async_lambda_client,
    dynamodb_client,
    share_default_session,
    sqs_client,
    sqs_receive_client,
)
from poller.aws.environment import LOOPS_TABLE, POLLER_FUNCTION, SCALE_UP_FUNCTION, region, required
from poller.clock import SYSTEM_CLOCK
from poller.config import Config, load_config
from poller.downstream.state import DynamoSharedStore
from poller.exceptions import BadLoopEvent, ConfigError, UnknownQueue
from poller.lease.recursion import LambdaInvoker
from poller.lease.step import LoopStep
from poller.lease.tokens import TokenStore, bind_token_table
from poller.logs import configure_logging, log
from poller.loop.run import Loop
from poller.loop.services import LoopServices
from poller.runs import RunBook


@cache
def _config() -> Config:
    # A queue of another region is refused here too, not only at deploy time (docs/config.md).
    return load_config(region=region())


@cache
def _services() -> LoopServices:
    table = required(LOOPS_TABLE)
    model = bind_token_table(table, region=region(), in_loop=True)
    share_default_session(model)  # one botocore session for every client: its data files parsed once
    return LoopServices(
        sqs_client=sqs_client(region()),
        sqs_receive_client=cache(partial(sqs_receive_client, region())),  # one per wait, for the container
        tokens=TokenStore(model),
        invoker=LambdaInvoker(async_lambda_client(region())),
        region=region(),
        clock=SYSTEM_CLOCK,
        rand=random.Random(),
        runs=RunBook.from_environment(region()),
        scale_up_function=os.environ.get(SCALE_UP_FUNCTION) or None,
        # The downstreams' state rows: only a rate-limited queue's loop calls them, so only it makes the client.
        shared=DynamoSharedStore(ClientOnFirstUse(partial(dynamodb_client, region())), table),
    )


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Run one step of the loop ``event`` names (``{queue_url, token, loop_id, generation}``)."""
    configure_logging()
    try:
        step = LoopStep.parse(event)
        config = _config()
        queue = config.queue_for_url(step.queue_url)
        services = _services()
    except (BadLoopEvent, ConfigError, UnknownQueue) as exc:
        # Retrying the same event cannot help: say why and stop (restart sees the row and decides).
        reason = {BadLoopEvent: "bad_event", ConfigError: "config_error", UnknownQueue: "unknown_queue"}[type(exc)]
        log("error", "loop_rejected", reason=reason, error=str(exc), loop_event=event)
        return {"reason": reason, "recursed": False}
    # The invoked ARN keeps the qualifier (alias or version) this step runs under.
    function = getattr(context, "invoked_function_arn", None) or os.environ.get(POLLER_FUNCTION, "")
    loop = Loop(step, queue=queue, settings=config.poller, services=services, context=context, function=function)
    return loop.run().as_dict()
