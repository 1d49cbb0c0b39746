"""Fault injection (sandbox/faults.py) and the invariants computed from a run's trace
(sandbox/demo/invariants.py), without a sandbox: the hook against in-process moto, the invariants on
hand-made traces."""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from conftest import REGION, FakeContext, LoopRig, count, log_events, make_queue, send

from poller.aws.errors import error_code, is_transient
from poller.lease.recursion import LambdaInvoker
from poller.lease.tokens import TokenStore, bind_token_table
from poller.loop import Loop, LoopServices
from sandbox import faults
from sandbox.demo.handlers import Delivery
from sandbox.demo.invariants import BatchSeen, count_causes, double_owned, duplicate_causes, time_to_converge_s
from sandbox.faults import FaultPlan, InvocationCrashed, OwnerChange, TokenTrace, parse_faults

TABLE = "faults-test-tokens"


@pytest.fixture
def hooked(aws: None) -> Iterator[Any]:
    """Install a plan, and run the test body as if it were a function of the runtime."""
    installed: list[FaultPlan] = []

    def install(plan: FaultPlan) -> TokenTrace:
        """Hook first (clients made before keep no hook), make the table, then act as the loop function."""
        trace = TokenTrace(TABLE)
        faults.install(plan, trace)
        installed.append(plan)
        bind_token_table(TABLE, region=REGION).create_table(billing_mode="PAY_PER_REQUEST", wait=True)
        faults.mark_invocation("sandbox-poller")
        return trace

    yield install
    faults.mark_invocation(None)
    faults.uninstall()
    bind_token_table.cache_clear()


def test_throttle_is_a_real_dynamodb_error_that_botocore_retries(hooked: Any) -> None:
    plan = FaultPlan({"throttle": 1.0})
    hooked(plan)
    retries = {"mode": "standard", "total_max_attempts": 2}
    dynamodb = boto3.client("dynamodb", region_name=REGION, config=boto3.session.Config(retries=retries))
    with pytest.raises(ClientError) as caught:
        dynamodb.get_item(TableName=TABLE, Key={"queue_url": {"S": "q"}, "token": {"S": "t"}})
    assert error_code(caught.value) == "ProvisionedThroughputExceededException"
    assert is_transient(caught.value)
    assert plan.counts()["throttle"] == 2  # botocore retried it as throttling: each attempt was throttled


def test_sqs_error_is_a_500_and_stops_with_the_plan(hooked: Any, sqs: Any) -> None:
    url = make_queue(sqs, "faulty")
    plan = FaultPlan({"sqs_error": 1.0})
    hooked(plan)
    retries = {"mode": "standard", "total_max_attempts": 3}
    client = boto3.client("sqs", region_name=REGION, config=boto3.session.Config(retries=retries))
    with pytest.raises(ClientError) as caught:
        client.send_message(QueueUrl=url, MessageBody="x")
    assert error_code(caught.value) == "InternalError" and is_transient(caught.value)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    plan.stop()
    client.send_message(QueueUrl=url, MessageBody="x")  # faults off: the real service answers
    assert plan.stopped_at is not None and plan.counts()["sqs_error"] == 3  # each attempt failed


def test_faults_never_touch_threads_that_are_not_functions(hooked: Any, sqs: Any) -> None:
    url = make_queue(sqs, "clean")
    plan = FaultPlan({"sqs_error": 1.0})
    hooked(plan)
    faults.mark_invocation(None)  # the demo's feeder, the sampler, the evaluator
    boto3.client("sqs", region_name=REGION).send_message(QueueUrl=url, MessageBody="x")
    assert plan.counts()["sqs_error"] == 0


def test_crash_kills_the_loop_invocation_at_its_delete(hooked: Any, sqs: Any) -> None:
    url = make_queue(sqs, "crashing", visibility_s=30)
    send(sqs, url, ["a", "b"])
    plan = FaultPlan({"crash": 1.0})
    hooked(plan)
    client = boto3.client("sqs", region_name=REGION)
    got = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
    with pytest.raises(InvocationCrashed):
        try:
            client.delete_message_batch(QueueUrl=url, Entries=entries)
        except Exception:  # what the loop catches: a crash must pass through it
            pytest.fail("a crash must not be an Exception")
    assert plan.crashed_receipts == {m["ReceiptHandle"] for m in got}
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "2"  # not deleted: they come back


def test_the_token_trace_sees_creates_takeovers_and_deletes_not_heartbeats(hooked: Any) -> None:
    trace = hooked(FaultPlan())
    store = TokenStore(bind_token_table(TABLE, region=REGION))
    store.create("q", "slot-0001", loop_id="a", now_ms=1)
    claimed = store.claim("q", "slot-0001", loop_id="a", generation=0, claim_id="c", now_ms=2)
    store.heartbeat("q", "slot-0001", loop_id="a", generation=claimed.generation, now_ms=3)
    store.takeover(store.get("q", "slot-0001"), new_loop_id="b", now_ms=4)  # type: ignore[arg-type]
    store.release("q", "slot-0001")
    assert [(c.operation, c.loop_id) for c in trace.snapshot()] == [
        ("PutItem", "a"),
        ("UpdateItem", "b"),
        ("DeleteItem", None),
    ]


def test_fault_plans_are_seeded_per_kind() -> None:
    def draws(plan: FaultPlan) -> list[bool]:
        return [plan.roll("drop") for _ in range(200)]

    first = draws(FaultPlan({"drop": 0.3, "crash": 0.5}, seed=4))
    again = FaultPlan({"drop": 0.3}, seed=4)
    assert draws(again) == first  # another kind switched on or off does not shift this one's draws
    assert 30 < sum(first) < 90 and again.counts() == {"drop": sum(first)}
    with pytest.raises(ValueError, match="unknown fault kinds"):
        FaultPlan({"melt": 0.1})
    assert parse_faults("crash=0.1,slow=1") == {"crash": 0.1, "slow": 1.0}
    with pytest.raises(ValueError, match="slow: expected a probability from 0 to 1, got 'x'"):
        parse_faults("slow=x")


# -- the invariants on hand-made traces ------------------------------------------------------------


def test_double_owned_counts_only_batches_started_after_ownership_ended() -> None:
    changes = [
        OwnerChange(10.0, "q", "t", "a", "PutItem"),
        OwnerChange(20.0, "q", "t", "b", "UpdateItem"),  # restart took it over
        OwnerChange(30.0, "q", "t", None, "DeleteItem"),
    ]
    batches = [
        BatchSeen(19.5, "q", "t", "a", 3),  # the batch in hand at the takeover: allowed
        BatchSeen(21.0, "q", "t", "a", 3),  # after it: a violation
        BatchSeen(25.0, "q", "t", "b", 5),
        BatchSeen(31.0, "q", "t", "b", 5),  # after the delete: a violation
        BatchSeen(12.0, "q", "other", "z", 1),  # no write seen for it: not judged
    ]
    found = double_owned(batches, changes)
    assert [(v["loop_id"], v["ownership_ended_by"]) for v in found] == [("a", "taken_over"), ("b", "deleted")]


def test_duplicates_are_attributed_to_their_cause() -> None:
    def handled(job: str, receipt: str, started: float, ended: float, message: str = "m") -> Delivery:
        return Delivery(job, f"{message}-{job}", receipt, 1, started, ended)

    deliveries = [
        handled("1", "r1", 0, 1),
        handled("1", "r1b", 8, 9),  # after a crash
        handled("2", "r2", 0, 1),
        handled("2", "r2b", 8, 9),  # after a failed delete
        handled("3", "r3", 0, 9),
        handled("3", "r3b", 7, 8),  # while the first was still in hand
        handled("4", "r4", 0, 1),
        handled("4", "r4b", 5, 6),  # no reason seen
        handled("5", "r5", 0, 1),
    ]
    repeats = duplicate_causes(deliveries, crashed_receipts={"r1"}, undeleted_message_ids={"m-2"})
    assert count_causes(repeats) == {"crash": 1, "delete_failed": 1, "unexplained": 1, "visibility_expired_in_hand": 1}


def test_time_to_converge_is_the_first_sample_at_the_wanted_count() -> None:
    def sample(t: float, working: int, wanted: int) -> dict[str, Any]:
        return {"t": t, "queues": {"a": {"working": working, "wanted": wanted}, "b": {"working": 1, "wanted": 1}}}

    samples = [sample(1, 2, 2), sample(5, 1, 2), sample(6, 1, 2), sample(9.5, 2, 2)]
    assert time_to_converge_s(samples, since_s=5) == 4.5
    assert time_to_converge_s(samples[:3], since_s=5) is None


def test_a_crash_is_as_abrupt_as_a_kill(hooked: Any, rig_factory: Any, loop_logs: Any) -> None:
    """A timeout or an out-of-memory kill runs no ``finally`` block and writes nothing more: the crashed batch
    logs no ``batch`` line (its ``finally`` used to), the loop reaches AWS no more (no next step, no row
    write), and the runtime learns of the death at once, not when the step's thread gets round to it."""
    rig: LoopRig = rig_factory(batch_size=10)
    send(rig.sqs, rig.url, ["a", "b", "c"])
    step = rig.create_token()
    hooked(FaultPlan({"crash": 1.0}))
    faults.mark_invocation(None)  # the loop runs in a thread of its own, as in the runtime
    killed = threading.Event()
    invoked: list[dict[str, Any]] = []

    class Invoker(LambdaInvoker):
        def invoke_async(self, function: str, payload: dict[str, Any]) -> None:
            super().invoke_async(function, payload)
            invoked.append(payload)  # reached only if the invoke got through to AWS

    def step_thread() -> None:
        faults.begin_invocation(faults.Invocation("sqs-loops-test-poller", on_kill=killed.set))
        services = LoopServices(
            sqs_client=boto3.client("sqs", region_name=REGION),  # made after the hook: it has it
            tokens=rig.tokens,
            invoker=Invoker(boto3.client("lambda", region_name=REGION)),
            region=REGION,
            clock=rig.clock,
            rand=random.Random(1),
        )
        queue = rig.config.queue("work")
        loop = Loop(
            step, queue=queue, settings=rig.config.poller, services=services, context=FakeContext(6), function="f"
        )
        with contextlib.suppress(faults.InvocationCrashed):  # unwinding once the sandbox closes
            loop.run()

    thread = threading.Thread(target=step_thread, daemon=True)
    thread.start()
    assert killed.wait(5)  # at the batch's delete, reported at once
    row_then = rig.tokens.get(rig.url, step.token)
    thread.join(7)  # past the step's deadline: a step that went on would have ended and recursed by now

    assert thread.is_alive()  # it never got through another AWS call
    assert invoked == [] and rig.tokens.get(rig.url, step.token) == row_then
    assert log_events(loop_logs, "batch") == [] and log_events(loop_logs, "loop_end") == []
    assert count(rig.sqs, rig.url) == (0, 3)  # handled, not deleted: they come back after their timeout
    faults.uninstall()  # the sandbox closes: the parked threads unwind
    thread.join(5)
    assert not thread.is_alive()
