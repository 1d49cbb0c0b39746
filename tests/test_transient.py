"""Throttling, 5xx and network errors are retried with backoff and never end a loop."""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import pytest
import sample_handlers
from botocore.exceptions import ClientError, EndpointConnectionError
from conftest import FakeClock, LoopRig, count, log_events, send
from pynamodb.exceptions import UpdateError

from poller.aws.errors import is_queue_unavailable, is_transient
from poller.aws.retry import Backoff, retry_transient
from poller.exceptions import RetriesExhausted
from poller.lease.step import LoopStep
from poller.lease.tokens import TokenState, TokenStore


def client_error(code: str, status: int = 400, operation: str = "Op") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


class FlakySqs:
    """The real (moto) SQS client, but the first ``n`` calls of each named operation fail with ``error``."""

    def __init__(self, real: Any, failures: dict[str, tuple[int, Exception]]):
        self.real = real
        self.failures = dict(failures)
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.real, name)

        def call(**kwargs: Any) -> Any:
            self.calls[name] += 1
            left, error = self.failures.get(name, (0, None))
            if left and error is not None:
                self.failures[name] = (left - 1, error)
                raise error
            return method(**kwargs)

        return call


class FlakyTokens(TokenStore):
    """The real token store, but its first ``claims`` claims are throttled by DynamoDB."""

    def __init__(self, real: TokenStore, claims: int):
        super().__init__(real.model)
        self.throttled_claims = claims

    def claim(self, *args: Any, **kwargs: Any) -> TokenState:
        if self.throttled_claims:
            self.throttled_claims -= 1
            raise UpdateError("throttled", cause=client_error("ProvisionedThroughputExceededException"))
        return super().claim(*args, **kwargs)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (client_error("ThrottlingException"), True),
        (client_error("ProvisionedThroughputExceededException"), True),
        (client_error("Whatever", status=503), True),
        (client_error("InternalError", status=500), True),
        (EndpointConnectionError(endpoint_url="https://sqs"), True),
        (UpdateError("x", cause=client_error("RequestLimitExceeded")), True),
        (client_error("KmsThrottled"), True),
        (client_error("OverLimit", status=403), True),
        (client_error("ConditionalCheckFailedException"), False),
        (client_error("AWS.SimpleQueueService.NonExistentQueue"), False),
        (client_error("ValidationException"), False),
        (ValueError("user bug"), False),
    ],
)
def test_which_errors_are_transient(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


def test_queue_unavailable_codes() -> None:
    assert is_queue_unavailable(client_error("AWS.SimpleQueueService.NonExistentQueue"))
    assert is_queue_unavailable(client_error("AccessDenied", status=403))
    assert is_queue_unavailable(client_error("KmsDisabled"))
    assert not is_queue_unavailable(client_error("ThrottlingException"))


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    clock = FakeClock()
    calls = 0

    def always_throttled() -> None:
        nonlocal calls
        calls += 1
        raise client_error("ThrottlingException")

    backoff = Backoff(base_s=0.1, cap_s=0.4, max_attempts=6)
    with pytest.raises(RetriesExhausted) as caught:
        retry_transient(always_throttled, what="x", clock=clock, rand=random.Random(1), backoff=backoff)
    assert calls == 6 and caught.value.attempts == 6
    assert 0 < clock.monotonic() <= 0.1 + 0.2 + 0.4 * 3


def test_throttled_receive_delete_and_claim_do_not_end_the_loop(rig_factory: Any, loop_logs: Any) -> None:
    rig: LoopRig = rig_factory()
    send(rig.sqs, rig.url, [f"m{n}" for n in range(15)])
    flaky = FlakySqs(
        rig.sqs,
        {
            "receive_message": (2, client_error("RequestThrottled", operation="ReceiveMessage")),
            "delete_message_batch": (1, client_error("InternalError", 500, "DeleteMessageBatch")),
        },
    )
    outcome = rig.run(rig.create_token(), budget_s=7, sqs_client=flaky, tokens=FlakyTokens(rig.tokens, claims=2))

    assert (outcome.reason, outcome.recursed, outcome.succeeded) == ("time_up", True, 15)
    assert count(rig.sqs, rig.url) == (0, 0)
    retried = Counter(line["what"] for line in log_events(loop_logs, "transient_error"))
    assert retried == {"receive": 2, "delete": 1, "claim": 2}


def test_a_claim_that_never_gets_through_hands_the_same_step_on(rig_factory: Any, loop_logs: Any) -> None:
    rig: LoopRig = rig_factory()
    step = rig.create_token()
    outcome = rig.run(step, budget_s=6, tokens=FlakyTokens(rig.tokens, claims=1000))

    assert (outcome.reason, outcome.recursed) == ("transient_errors", True)
    handed = rig.invoker.calls[-1][1]
    assert handed == {**step.payload(), "claim_ids": handed["claim_ids"]}  # the same step, with our claim id
    assert len(handed["claim_ids"]) == 1
    assert log_events(loop_logs, "handing_over")


class ClaimLandsAnswersLost(TokenStore):
    """Every claim is written, but its answer never arrives (a timeout after the write)."""

    def claim(self, *args: Any, **kwargs: Any) -> TokenState:
        super().claim(*args, **kwargs)
        raise UpdateError("timed out", cause=client_error("InternalServerError", 500))


def test_a_claim_that_landed_unseen_is_honoured_once_by_the_handed_over_step(rig_factory: Any) -> None:
    rig: LoopRig = rig_factory()
    step = rig.create_token()
    rig.run(step, budget_s=6, tokens=ClaimLandsAnswersLost(rig.tokens.model))
    handed = LoopStep.parse(rig.invoker.calls[-1][1])
    assert rig.tokens.get(rig.url, step.token).generation == 1  # type: ignore[union-attr]  # it did land

    first = rig.run(handed, budget_s=6)
    duplicate = rig.run(handed, budget_s=6)

    assert (first.reason, first.generation, first.recursed) == ("time_up", 1, True)
    assert (duplicate.reason, duplicate.recursed) == ("superseded", False)


def test_a_claim_that_landed_two_hand_overs_back_is_still_recognised(rig_factory: Any) -> None:
    """Step 0's first invocation claims (the write lands, every answer is lost) and hands over; the second
    invocation's claims never get through (throttled) and it hands over again. The third must still see the
    row's claim as its own: the row holds the first invocation's claim id, two hand-overs back."""
    rig: LoopRig = rig_factory()
    step = rig.create_token()
    rig.run(step, budget_s=5, tokens=ClaimLandsAnswersLost(rig.tokens.model))
    once = LoopStep.parse(rig.invoker.calls[-1][1])
    rig.run(once, budget_s=5, tokens=FlakyTokens(rig.tokens, claims=1000))
    twice = LoopStep.parse(rig.invoker.calls[-1][1])
    assert twice.generation == 0 and len(twice.claim_ids) == 2 and twice.claim_ids[0] == once.claim_ids[0]

    third = rig.run(twice, budget_s=6)
    duplicate = rig.run(twice, budget_s=6)

    assert (third.reason, third.generation, third.recursed) == ("time_up", 1, True)
    assert (duplicate.reason, duplicate.recursed) == ("superseded", False)
    assert rig.invoker.calls[-1][1] == {**step.payload(), "generation": 1}  # the next step, no claim ids


class SlowClaim(TokenStore):
    """The real token store, but a claim takes ``delay_s`` (DynamoDB slow, or botocore's retries within it)."""

    def __init__(self, real: TokenStore, delay_s: float):
        super().__init__(real.model)
        self.delay_s = delay_s

    def claim(self, *args: Any, **kwargs: Any) -> TokenState:
        time.sleep(self.delay_s)
        return super().claim(*args, **kwargs)


def test_a_claim_that_succeeds_late_hands_over_instead_of_stopping_for_good(rig_factory: Any, loop_logs: Any) -> None:
    """The claim lands with too little time left for a batch: time lost to a slow DynamoDB is not a
    configuration error (invocation_too_short would stop the loop until restart's back-off)."""
    rig: LoopRig = rig_factory()
    step = rig.create_token()
    outcome = rig.run(step, budget_s=7, tokens=SlowClaim(rig.tokens, delay_s=2.5))

    assert (outcome.reason, outcome.generation, outcome.recursed) == ("claimed_late", 1, True)
    assert rig.invoker.calls[-1][1] == {**step.payload(), "generation": 1}
    assert rig.tokens.get(rig.url, step.token).last_error is None  # type: ignore[union-attr]  # no error noted
    assert log_events(loop_logs, "claimed_late")


def test_a_handed_over_event_from_the_previous_version_is_read() -> None:
    old = {"queue_url": "q", "token": "t", "loop_id": "L", "generation": 3, "claim_id": "c-old"}
    assert LoopStep.parse(old).claim_ids == ("c-old",)


def test_sqs_outage_until_the_deadline_hands_over_to_the_next_step(rig_factory: Any) -> None:
    rig: LoopRig = rig_factory()
    down = FlakySqs(rig.sqs, {"receive_message": (10_000, client_error("ServiceUnavailable", 503, "ReceiveMessage"))})
    outcome = rig.run(rig.create_token(), budget_s=6, sqs_client=down)
    assert (outcome.reason, outcome.recursed) == ("transient_errors", True)
    assert rig.invoker.calls[-1][1]["generation"] == 1


def test_access_denied_ends_the_loop_with_a_clear_error(rig_factory: Any, loop_logs: Any) -> None:
    rig: LoopRig = rig_factory()
    denied = FlakySqs(rig.sqs, {"receive_message": (10_000, client_error("AccessDenied", 403, "ReceiveMessage"))})
    outcome = rig.run(rig.create_token(), budget_s=6, sqs_client=denied)
    assert (outcome.reason, outcome.recursed) == ("queue_unavailable", False)
    assert denied.calls["receive_message"] == 1
    (end,) = log_events(loop_logs, "loop_end")
    assert "AccessDenied" in end["error"]


class FirstDeleteEntryFails:
    """The real SQS client, but the first DeleteMessageBatch reports its first entry as a service fault."""

    def __init__(self, real: Any):
        self.real = real
        self.entries_sent: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def delete_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:
        self.entries_sent.append(len(Entries))
        if len(self.entries_sent) > 1:
            return self.real.delete_message_batch(QueueUrl=QueueUrl, Entries=Entries)
        result = self.real.delete_message_batch(QueueUrl=QueueUrl, Entries=Entries[1:])
        result["Failed"] = [{"Id": Entries[0]["Id"], "SenderFault": False, "Code": "InternalError"}]
        return result


def test_failed_delete_entries_are_sent_again(rig_factory: Any) -> None:
    rig: LoopRig = rig_factory()
    send(rig.sqs, rig.url, [f"m{n}" for n in range(4)])
    sqs = FirstDeleteEntryFails(rig.sqs)

    outcome = rig.run(rig.create_token(), budget_s=6, sqs_client=sqs)

    assert outcome.succeeded == 4 and sqs.entries_sent == [4, 1]
    assert count(rig.sqs, rig.url) == (0, 0)
    assert sample_handlers.bodies().count("m0") == 1


def test_a_delete_that_fails_for_good_hands_over_before_the_next_batch_is_handled(
    rig_factory: Any, loop_logs: Any
) -> None:
    """The delete runs in the background while the next receive waits: when it fails for good, the batch
    received meanwhile is given back unhandled, and the step hands over (no batch left in flight, unlogged)."""
    rig: LoopRig = rig_factory()
    send(rig.sqs, rig.url, [f"m{n}" for n in range(15)])
    broken = FlakySqs(
        rig.sqs, {"delete_message_batch": (1000, client_error("InternalError", 500, "DeleteMessageBatch"))}
    )
    outcome = rig.run(rig.create_token(), budget_s=7, sqs_client=broken)

    assert (outcome.reason, outcome.recursed) == ("transient_errors", True)
    assert len(sample_handlers.bodies()) == 10  # the first batch only
    (failed,) = log_events(loop_logs, "delete_failed")
    assert len(failed["message_ids"]) == 10
    assert count(rig.sqs, rig.url) == (5, 10)  # given back at once; the undeleted batch waits its timeout
