"""Simulated time for the call-count benchmarks: a fake clock, and long polls that take fake time.

An idle loop spends its life in 20-second long polls, and a loop's heartbeat and recursion follow its
clock and its deadline: counting its calls over an hour in real time would take an hour. Here the calls are
real (botocore sends each one to the moto server and the counter sees it), only the waiting is simulated:
every ReceiveMessage is sent with ``WaitTimeSeconds=0``, and when it comes back empty the fake clock moves
on by the wait that was asked for, as an empty long poll on SQS lasts exactly that long."""

from __future__ import annotations

from typing import Any

from sandbox.clock import FakeClock


def simulate_long_polls(sqs_client: Any, clock: FakeClock) -> None:
    """Make ``sqs_client``'s long polls take fake time on ``clock`` instead of real time."""
    asked: list[int] = [0]

    def before(params: dict[str, Any], **_: Any) -> None:
        asked[0] = int(params.get("WaitTimeSeconds") or 0)
        params["WaitTimeSeconds"] = 0

    def after(parsed: dict[str, Any], **_: Any) -> None:
        if not parsed.get("Messages"):
            clock.advance(asked[0])

    sqs_client.meta.events.register("provide-client-params.sqs.ReceiveMessage", before)
    sqs_client.meta.events.register("after-call.sqs.ReceiveMessage", after)
