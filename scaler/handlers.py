"""Lambda entry points of the control plane: ``scaler.handlers.scale_up``, ``scale_down``, ``restart``.

Config, clients and table models are made on first use and kept for the warm container."""

from __future__ import annotations

from functools import cache
from typing import Any

from poller.aws.arn import Arn
from poller.aws.clients import control_client
from poller.aws.environment import LOOPS_PREFIX, LOOPS_TABLE, POLLER_FUNCTION, region, required
from poller.clock import SYSTEM_CLOCK
from poller.config import load_config
from poller.downstream.state import DynamoSharedStore
from poller.lease.recursion import LambdaInvoker
from poller.lease.tokens import TokenStore, bind_token_table
from poller.logs import configure_logging, log
from poller.runs import RunBook
from scaler.alarms.states import AlarmStates
from scaler.control import DOWN, UP, ControlPlane
from scaler.depth import QueueDepths, depth_client
from scaler.holds import HoldStore, bind_hold_table
from scaler.overrides import OverrideStore, bind_override_table
from scaler.reconcile import Reconciler
from scaler.share import shared_names


@cache
def control_plane() -> ControlPlane:
    table, prefix = required(LOOPS_TABLE), required(LOOPS_PREFIX)
    tokens = TokenStore(bind_token_table(table, region=region()))
    invoker = LambdaInvoker(control_client("lambda", region()))
    config = load_config(region=region())
    # Shared downstreams' state rows, for a queue's share (scaler/share.py); no client without one.
    shares = DynamoSharedStore(control_client("dynamodb", region()), table) if shared_names(config) else None
    return ControlPlane(
        config=config,
        prefix=prefix,
        tokens=tokens,
        alarms=AlarmStates(control_client("cloudwatch", region()), prefix),
        overrides=OverrideStore(bind_override_table(table, region=region())),
        reconciler=Reconciler(tokens, invoker, required(POLLER_FUNCTION), SYSTEM_CLOCK),
        depths=QueueDepths(depth_client(region())),
        holds=HoldStore(bind_hold_table(table, region=region())),
        shares=shares,
    )


def scale_up(event: Any, context: Any) -> list[dict[str, Any]]:
    """An alarm went into ALARM, or a loop asked for growth: add loops up to the queue's wanted count."""
    configure_logging()
    arn = Arn.parse(getattr(context, "invoked_function_arn", "") or "")
    # A growth request's queue is named in this function's own account and region.
    return control_plane().on_alarm_event(event, UP, region=region(), account_id=arn.account if arn else "")


def scale_down(event: Any, context: Any) -> list[dict[str, Any]]:
    """An alarm left ALARM: retire loops down to the queue's wanted count."""
    configure_logging()
    return control_plane().on_alarm_event(event, DOWN)


def restart(event: Any, context: Any) -> dict[str, Any]:
    """Every minute: revive dead loops and reconcile every queue to its wanted count."""
    configure_logging()
    # The account is in the function's own ARN: no STS call needed to name the queues' URLs.
    account_id = Arn.parse(context.invoked_function_arn).account  # type: ignore[union-attr]  # Lambda gives an ARN
    report = control_plane().restart(region=region(), account_id=account_id)
    log("info", "restart_done", queues=len(report))
    _republish_run_notices()
    return report


@cache
def run_book() -> RunBook | None:
    return RunBook.from_environment(region())


def _republish_run_notices() -> None:
    """Notices of finished runs whose publish failed go out again (docs/runs.md#the-notice)."""
    book = run_book()
    if book is None:
        return
    try:
        book.notifier.republish_unannounced()
    except Exception as exc:  # the next minute's restart tries again
        log("warning", "run_republish_failed", error=repr(exc))
