"""Receive ahead on standard queues (poller/loop/receive_ahead.py), against moto: the next batch is received
while the handler works, kept invisible until its turn, and given back at once when this step will not
handle it."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
import sample_handlers
from conftest import LoopRig, count, log_events, send
from test_downstream import Vendor

from poller.timing import RECURSE_RESERVE_S
from sandbox import loopback


def _first_received_ms(event: dict[str, Any]) -> list[int]:
    return [int(r["attributes"]["ApproximateFirstReceiveTimestamp"]) for r in event["Records"]]


def test_the_next_batch_is_received_while_the_handler_works(rig_factory: Any, loop_logs: Any) -> None:
    rig: LoopRig = rig_factory(batch_size=2)
    send(rig.sqs, rig.url, [f"m{n}" for n in range(4)])
    batches: list[tuple[list[int], float]] = []

    def work(event: dict[str, Any], context: Any) -> None:
        time.sleep(0.5)
        batches.append((_first_received_ms(event), time.time() * 1000))
        if len(batches) == 2:
            context.end = context.clock.monotonic() + RECURSE_RESERVE_S + 1.5  # no room for a third batch

    sample_handlers.use(work)
    outcome = rig.run(rig.create_token(), budget_s=12)

    assert outcome.succeeded == 4 and count(rig.sqs, rig.url) == (0, 0)
    (_, first_ended), (second_received, _) = batches
    assert max(second_received) < first_ended  # received before the first batch's handler returned
    assert not log_events(loop_logs, "receive_ahead_given_back")


def test_a_batch_received_ahead_stays_invisible_while_a_slow_handler_runs(rig_factory: Any) -> None:
    rig: LoopRig = rig_factory(batch_size=2, visibility_timeout_s=3, handler_timeout_s=8)
    send(rig.sqs, rig.url, [f"m{n}" for n in range(4)])
    peeks: list[int] = []
    handled: list[str] = []

    def slow_first(event: dict[str, Any], context: Any) -> None:
        handled.extend(r["body"] for r in event["Records"])
        if len(handled) == 2:
            for _ in range(3):  # 6 s in all, twice the visibility timeout of the batch received ahead
                time.sleep(2)
                peeks.append(len(rig.sqs.receive_message(QueueUrl=rig.url, WaitTimeSeconds=0).get("Messages", [])))
        else:
            context.end = context.clock.monotonic() + RECURSE_RESERVE_S + 1.5

    sample_handlers.use(slow_first)
    outcome = rig.run(rig.create_token(), budget_s=30)

    assert peeks == [0, 0, 0]  # nobody else got the batch received ahead while it waited its turn
    assert sorted(handled) == ["m0", "m1", "m2", "m3"]  # each once
    assert outcome.succeeded == 4 and count(rig.sqs, rig.url) == (0, 0)


def _give_back_case(rig: LoopRig, loop_logs: Any, during_first_batch: Any, budget_s: float = 10) -> Any:
    send(rig.sqs, rig.url, [f"m{n}" for n in range(6)])
    step = rig.create_token()

    def work(event: dict[str, Any], context: Any) -> None:
        if len(sample_handlers.seen) == 2:
            during_first_batch(step, context)
            time.sleep(1.5)  # the receive ahead has its answer

    sample_handlers.use(work)
    started = time.monotonic()
    outcome = rig.run(step, budget_s=budget_s)
    # Visible at once: with a visibility timeout of 30 s they would still be in flight.
    assert count(rig.sqs, rig.url) == (4, 0)
    assert time.monotonic() - started < 25
    (given_back,) = log_events(loop_logs, "receive_ahead_given_back")
    assert given_back["messages"] == 2
    assert len(sample_handlers.seen) == 2  # only the first batch was handled
    return outcome


def test_what_was_received_ahead_is_given_back_when_the_lease_is_lost(rig_factory: Any, loop_logs: Any) -> None:
    rig: LoopRig = rig_factory(poller="poller: {heartbeat_s: 1}", batch_size=2)

    def take_over(step: Any, context: Any) -> None:
        seen = rig.tokens.get(rig.url, step.token)
        assert seen is not None
        rig.tokens.takeover(seen, new_loop_id="loop-b", now_ms=int(time.time() * 1000))

    outcome = _give_back_case(rig, loop_logs, take_over)
    assert (outcome.reason, outcome.recursed) == ("taken_over", False)


def test_what_was_received_ahead_is_given_back_when_the_row_retires(rig_factory: Any, loop_logs: Any) -> None:
    rig: LoopRig = rig_factory(poller="poller: {heartbeat_s: 1}", batch_size=2)
    outcome = _give_back_case(
        rig, loop_logs, lambda step, context: rig.tokens.retire(rig.url, step.token, now_ms=int(time.time() * 1000))
    )
    assert outcome.reason == "retired"
    assert rig.tokens.get(rig.url, "slot-1") is None


def test_what_was_received_ahead_is_given_back_when_the_time_is_short(rig_factory: Any, loop_logs: Any) -> None:
    rig: LoopRig = rig_factory(batch_size=2)

    def time_short(step: Any, context: Any) -> None:
        context.end = context.clock.monotonic() + RECURSE_RESERVE_S + 3  # room for this batch, not the next

    outcome = _give_back_case(rig, loop_logs, time_short)
    assert (outcome.reason, outcome.recursed) == ("time_up", True)


def test_what_was_received_ahead_is_given_back_when_the_downstream_asks_to_wait(
    rig_factory: Any, loop_logs: Any
) -> None:
    """A 429 with Retry-After pauses the loop before its next batch: the batch received ahead would wait out
    the pause invisible, so it goes back at once, and is received again after the pause."""
    vendor = Vendor()
    try:
        http = {"url": vendor.url + "/jobs", "per": "record", "timeout_s": 0.5}
        rig: LoopRig = rig_factory(handler=None, http=http, batch_size=2)
        send(rig.sqs, rig.url, ["ok-0", "busy"])  # the pause comes with the batch's last record
        send(rig.sqs, rig.url, ["ok-1", "ok-2"])
        outcome = rig.run(rig.create_token(), budget_s=16)
    finally:
        loopback.stop(vendor.server)

    (given_back,) = log_events(loop_logs, "receive_ahead_given_back")
    assert given_back["messages"] == 2
    assert log_events(loop_logs, "downstream_pause")
    bodies = [body.decode() for _, body in vendor.requests]
    assert {"ok-0", "ok-1", "ok-2"} <= set(bodies)  # the batch given back came again after the pause
    assert bodies.count("ok-1") == 1 and bodies.count("ok-2") == 1  # and was not sent before it
    assert outcome.succeeded >= 3


@pytest.mark.parametrize(("rate", "ahead"), [(20, True), (2, False)])
def test_under_a_rate_limit_the_next_batch_is_received_while_the_share_is_spent(
    rig_factory: Any, loop_logs: Any, rate: int, ahead: bool
) -> None:
    """At 20 a second a turn comes every 50 ms: the loop receives ahead, so the share's slots that pass
    during a receive are not lost; at 2 a second (a turn every 0.5 s) it does not, since the batch would wait
    for its turn and be given back."""
    rig: LoopRig = rig_factory(rate_limit=rate, batch_size=2)
    send(rig.sqs, rig.url, [f"m{n}" for n in range(4)])
    batches: list[tuple[list[int], float]] = []

    def work(event: dict[str, Any], context: Any) -> None:
        time.sleep(0.5)
        batches.append((_first_received_ms(event), time.time() * 1000))
        if sum(len(received) for received, _ in batches) == 4:
            context.end = context.clock.monotonic() + RECURSE_RESERVE_S + 1.5  # no room for another batch

    sample_handlers.use(work)
    outcome = rig.run(rig.create_token(), budget_s=12)

    assert outcome.succeeded == 4 and count(rig.sqs, rig.url) == (0, 0)
    overlapped = [max(received) < ended for (_, ended), (received, _) in itertools.pairwise(batches)]
    # received while the batch before was handled (not the first step's second: its share was not known yet)
    assert any(overlapped) is ahead
    assert not log_events(loop_logs, "receive_ahead_given_back")
