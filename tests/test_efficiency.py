"""AWS calls per processed message at full backlog, counted on the real clients against moto."""

from __future__ import annotations

from collections import Counter
from typing import Any

import boto3
import sample_handlers
from conftest import REGION, FakeClock, LoopRig, send

from poller.lease.tokens import TokenStore

BATCH_S = 0.5  # fake seconds one batch of 10 takes in the handler
BACKLOG = 100  # kept constant: each batch sends 10 new messages on a client that is not counted


def count_calls(client: Any, counter: Counter[str], prefix: str) -> None:
    def on_call(model: Any, **_: Any) -> None:
        counter[f"{prefix}.{model.name}"] += 1

    client.meta.events.register("before-call", on_call)


class CountingInvoker:
    def __init__(self, counter: Counter[str]):
        self.counter = counter
        self.payloads: list[dict[str, Any]] = []

    def invoke_async(self, function: str, payload: dict[str, Any]) -> None:
        self.counter["lambda.Invoke"] += 1
        self.payloads.append(payload)


def test_calls_per_message_at_full_backlog(rig_factory: Any, tokens: TokenStore) -> None:
    clock = FakeClock()
    rig: LoopRig = rig_factory(clock=clock, poller="poller: {timeout_s: 300, heartbeat_s: 20}")
    send(rig.sqs, rig.url, [f"seed{n}" for n in range(BACKLOG)])
    feeder = boto3.client("sqs", region_name=REGION)

    def refill(event: dict[str, Any], context: Any) -> None:
        clock.advance(BATCH_S)
        n = len(sample_handlers.seen)
        send(feeder, rig.url, [f"m{n + i}" for i in range(len(event["Records"]))])

    sample_handlers.use(refill)
    calls: Counter[str] = Counter()
    counted_sqs = boto3.client("sqs", region_name=REGION)
    count_calls(counted_sqs, calls, "sqs")
    count_calls(tokens.model._get_connection().connection.client, calls, "dynamodb")
    rig.invoker = CountingInvoker(calls)  # type: ignore[assignment]
    step = rig.create_token()
    calls.clear()  # creating the token is the scaler's call, not the loop's

    outcome = rig.run(step, budget_s=60, sqs_client=counted_sqs)

    processed = outcome.succeeded
    assert processed >= 1000 and outcome.failed == 0  # (60 - 1 - 3) s / 0.5 s a batch, 10 a batch
    assert outcome.heartbeats >= 2  # the run spans heartbeat intervals: they are counted too
    assert calls["sqs.ReceiveMessage"] == calls["sqs.DeleteMessageBatch"] == outcome.batches
    assert calls["lambda.Invoke"] == 1
    per_message = sum(calls.values()) / processed
    print(f"calls per message: {per_message:.4f} ({dict(calls)})")
    assert per_message <= 0.22
