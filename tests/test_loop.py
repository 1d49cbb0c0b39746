"""One loop invocation against moto: claim and fencing, batches, failures, time budget, keep-alive."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sample_handlers
from conftest import FUNCTION_ARN, LoopRig, count, log_events, send

from poller.lease.step import LoopStep
from poller.lease.tokens import TokenState, TokenStore
from poller.timing import RECURSE_RESERVE_S


def test_processes_the_backlog_deletes_it_and_recurses(rig_factory: Any, loop_logs: Any) -> None:
    rig: LoopRig = rig_factory()
    send(rig.sqs, rig.url, [f"m{n}" for n in range(25)])
    step = rig.create_token()

    outcome = rig.run(step, budget_s=6)

    assert sorted(sample_handlers.bodies()) == sorted(f"m{n}" for n in range(25))
    assert count(rig.sqs, rig.url) == (0, 0)
    assert (outcome.reason, outcome.recursed, outcome.generation) == ("time_up", True, 1)
    assert outcome.batches == 3 and outcome.succeeded == 25
    assert rig.invoker.calls == [
        (FUNCTION_ARN, {"queue_url": rig.url, "token": "slot-1", "loop_id": "loop-a", "generation": 1})
    ]
    row = rig.tokens.get(rig.url, "slot-1")
    assert row is not None and row.generation == 1 and row.last_used is not None
    batch_lines = log_events(loop_logs, "batch")
    assert len(batch_lines) == 3
    for line in batch_lines:
        assert {"queue", "token", "loop_id", "generation", "received", "succeeded", "failed", "duration_ms"} <= set(
            line
        )
    (end,) = log_events(loop_logs, "loop_end")
    assert (end["reason"], end["queue"], end["generation"]) == ("time_up", "work", 1)


def test_next_step_continues_where_the_last_one_stopped(rig_factory: Any) -> None:
    rig: LoopRig = rig_factory()
    step = rig.create_token()
    rig.run(step, budget_s=6)
    _, payload = rig.invoker.calls[-1]
    send(rig.sqs, rig.url, ["later"])
    outcome = rig.run(LoopStep(**payload), budget_s=6)
    assert (outcome.generation, outcome.succeeded) == (2, 1)
    assert rig.invoker.calls[-1][1]["generation"] == 2


def test_duplicate_delivery_of_a_step_exits_quietly(rig_factory: Any, loop_logs: Any) -> None:
    rig: LoopRig = rig_factory()
    step = rig.create_token()
    rig.run(step, budget_s=6)
    send(rig.sqs, rig.url, ["x"])

    duplicate = rig.run(step, budget_s=6)

    assert (duplicate.reason, duplicate.recursed, duplicate.batches) == ("superseded", False, 0)
    assert sample_handlers.seen == []
    assert len(rig.invoker.calls) == 1
    assert not [e for e in log_events(loop_logs, "loop_end") if e["level"] != "info"]


def test_deleted_token_ends_the_loop_before_any_receive(rig_factory: Any) -> None:
    rig: LoopRig = rig_factory()
    step = rig.create_token()
    rig.tokens.release(rig.url, step.token)
    send(rig.sqs, rig.url, ["x"])

    outcome = rig.run(step, budget_s=6)

    assert (outcome.reason, outcome.recursed, outcome.received) == ("deleted", False, 0)
    assert count(rig.sqs, rig.url) == (1, 0)


def test_takeover_mid_batch_stops_after_the_batch_in_hand(rig_factory: Any) -> None:
    rig: LoopRig = rig_factory(poller="poller: {heartbeat_s: 1}", batch_size=2)
    send(rig.sqs, rig.url, [f"m{n}" for n in range(6)])
    step = rig.create_token()

    def take_over_then_work(event: dict[str, Any], context: Any) -> None:
        if len(sample_handlers.seen) == 2:  # first batch: restart takes the token over meanwhile
            seen = rig.tokens.get(rig.url, step.token)
            assert seen is not None
            rig.tokens.takeover(seen, new_loop_id="loop-b", now_ms=int(time.time() * 1000))
            time.sleep(1.5)

    sample_handlers.use(take_over_then_work)
    outcome = rig.run(step, budget_s=8)

    assert (outcome.reason, outcome.recursed, outcome.batches) == ("taken_over", False, 1)
    assert len(sample_handlers.seen) == 2
    assert count(rig.sqs, rig.url) == (4, 0)  # the batch in hand was finished and deleted
    assert rig.tokens.get(rig.url, step.token).loop_id == "loop-b"  # type: ignore[union-attr]


def test_retired_token_is_released_by_its_loop_after_the_batch_in_hand(rig_factory: Any) -> None:
    rig: LoopRig = rig_factory(poller="poller: {heartbeat_s: 1}", batch_size=2)
    send(rig.sqs, rig.url, [f"m{n}" for n in range(6)])
    step = rig.create_token()

    def retire_then_work(event: dict[str, Any], context: Any) -> None:
        if len(sample_handlers.seen) == 2:
            rig.tokens.retire(rig.url, step.token, now_ms=int(time.time() * 1000))
            time.sleep(1.5)

    sample_handlers.use(retire_then_work)
    outcome = rig.run(step, budget_s=8)

    assert (outcome.reason, outcome.recursed, outcome.batches) == ("retired", False, 1)
    assert rig.tokens.get(rig.url, step.token) is None


def test_partial_batch_failures_leave_only_the_failed_messages(rig_factory: Any) -> None:
    rig: LoopRig = rig_factory(batch_size=10, visibility_timeout_s=60)
    send(rig.sqs, rig.url, [f"m{n}" for n in range(10)])

    def fail_odd(event: dict[str, Any], context: Any) -> dict[str, Any]:
        odd = [r for r in event["Records"] if int(r["body"][1:]) % 2]
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in odd]}

    sample_handlers.use(fail_odd)
    outcome = rig.run(rig.create_token(), budget_s=6)

    assert (outcome.succeeded, outcome.failed) == (5, 5)
    assert count(rig.sqs, rig.url) == (0, 5)  # failed ones wait out their visibility timeout


def test_handler_exception_fails_the_batch_and_the_loop_goes_on(rig_factory: Any, loop_logs: Any) -> None:
    rig: LoopRig = rig_factory(batch_size=2, visibility_timeout_s=60)
    send(rig.sqs, rig.url, ["boom", "boom", "fine", "fine"])

    def explode_on_boom(event: dict[str, Any], context: Any) -> None:
        if any(r["body"] == "boom" for r in event["Records"]):
            raise ValueError("downstream said no")

    sample_handlers.use(explode_on_boom)
    outcome = rig.run(rig.create_token(), budget_s=6)

    assert outcome.recursed and outcome.reason == "time_up"
    assert outcome.succeeded == 2 and outcome.failed == 2
    assert count(rig.sqs, rig.url) == (0, 2)
    (error,) = log_events(loop_logs, "handler_error")
    assert "ValueError: downstream said no" in error["error"] and len(error["message_ids"]) == 2


def test_poison_message_goes_to_the_dlq_after_max_receive_count(rig_factory: Any) -> None:
    rig: LoopRig = rig_factory(dlq_after=2, visibility_timeout_s=3)
    send(rig.sqs, rig.url, ["poison", "ok"])

    def reject_poison(event: dict[str, Any], context: Any) -> dict[str, Any]:
        bad = [r["messageId"] for r in event["Records"] if r["body"] == "poison"]
        return {"batchItemFailures": [{"itemIdentifier": i} for i in bad]}

    sample_handlers.use(reject_poison)
    rig.run(rig.create_token(), budget_s=12)

    assert sample_handlers.bodies().count("poison") == 2
    assert sample_handlers.bodies().count("ok") == 1
    assert count(rig.sqs, rig.url) == (0, 0)
    dlq = rig.sqs.get_queue_url(QueueName="work-queue-dlq")["QueueUrl"]
    moved = rig.sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in moved] == ["poison"]


def test_time_budget_leaves_room_for_the_last_batch_and_recursion(rig_factory: Any) -> None:
    rig: LoopRig = rig_factory(handler_timeout_s=2, wait_time_s=5)

    started = time.monotonic()
    outcome = rig.run(rig.create_token(), budget_s=9)
    elapsed = time.monotonic() - started

    # Polls are cut to the time left: the loop never starts one that would eat the handler's budget
    # or the recursion reserve, so it ends with both left (9 - 2 - 3 = 4 s of polling at most), and it
    # does not give up the time it has either. Bounds that hold on a loaded machine: it used more than
    # half its polling time, and handed over with its recursion reserve still left (a late long poll or a
    # slow moto may eat into the handler's budget, never into the reserve).
    assert outcome.recursed
    assert 2 <= elapsed < 9 - RECURSE_RESERVE_S


def test_slow_handler_keeps_its_messages_invisible(rig_factory: Any) -> None:
    rig: LoopRig = rig_factory(visibility_timeout_s=3, handler_timeout_s=8)
    send(rig.sqs, rig.url, ["slow"])
    peeks: list[int] = []

    def slow(event: dict[str, Any], context: Any) -> None:
        for _ in range(3):  # 6 s in all, twice the visibility timeout
            time.sleep(2)
            peeks.append(len(rig.sqs.receive_message(QueueUrl=rig.url, WaitTimeSeconds=0).get("Messages", [])))

    sample_handlers.use(slow)
    outcome = rig.run(rig.create_token(), budget_s=13)

    assert peeks == [0, 0, 0]  # without extension the message would be visible again after 3 s
    assert outcome.succeeded == 1 and count(rig.sqs, rig.url) == (0, 0)
    assert sample_handlers.bodies() == ["slow"]


class SlowFirstHeartbeat(TokenStore):
    """The real token store, but its first heartbeat takes ``delay_s`` (DynamoDB slow for a moment)."""

    def __init__(self, real: TokenStore, delay_s: float):
        super().__init__(real.model)
        self.delay_s = delay_s
        self.slowed = False

    def heartbeat(self, *args: Any, **kwargs: Any) -> TokenState:
        if not self.slowed:
            self.slowed = True
            time.sleep(self.delay_s)
        return super().heartbeat(*args, **kwargs)


def test_a_slow_heartbeat_does_not_delay_the_visibility_extension(rig_factory: Any) -> None:
    """Heartbeat 4 s (DynamoDB slow), visibility 3 s: when one keeper did both in turn, the extension waited
    for the heartbeat and another consumer received the message while its handler still ran."""
    rig: LoopRig = rig_factory(poller="poller: {heartbeat_s: 1}", visibility_timeout_s=3, handler_timeout_s=6)
    send(rig.sqs, rig.url, ["slow"])
    peeks: list[int] = []

    def slow(event: dict[str, Any], context: Any) -> None:
        for _ in range(5):
            time.sleep(1)
            peeks.append(len(rig.sqs.receive_message(QueueUrl=rig.url, WaitTimeSeconds=0).get("Messages", [])))

    sample_handlers.use(slow)
    outcome = rig.run(rig.create_token(), budget_s=11, tokens=SlowFirstHeartbeat(rig.tokens, delay_s=4))

    assert peeks == [0, 0, 0, 0, 0]  # nobody else got the message while its handler ran
    assert outcome.succeeded == 1 and count(rig.sqs, rig.url) == (0, 0)
    assert outcome.heartbeats >= 1


def test_heartbeats_continue_during_a_long_batch(rig_factory: Any) -> None:
    rig: LoopRig = rig_factory(poller="poller: {heartbeat_s: 1}", handler_timeout_s=5)
    send(rig.sqs, rig.url, ["long"])
    beats: list[int | None] = []

    def long_batch(event: dict[str, Any], context: Any) -> None:
        for _ in range(3):
            time.sleep(1.1)
            beats.append(rig.tokens.get(rig.url, "slot-1").last_used)  # type: ignore[union-attr]

    sample_handlers.use(long_batch)
    outcome = rig.run(rig.create_token(), budget_s=10)

    assert outcome.heartbeats >= 2
    assert beats[0] is not None and beats[0] < beats[-1]  # type: ignore[operator]


def test_handler_import_error_stops_without_touching_messages(rig_factory: Any, loop_logs: Any) -> None:
    rig: LoopRig = rig_factory(handler="broken_handler.handle")
    send(rig.sqs, rig.url, ["waits"])

    outcome = rig.run(rig.create_token(), budget_s=6)

    assert (outcome.reason, outcome.recursed) == ("handler_import_error", False)
    assert count(rig.sqs, rig.url) == (1, 0)
    row = rig.tokens.get(rig.url, "slot-1")
    assert row is not None and "broken_handler.handle" in (row.last_error or "")
    (end,) = log_events(loop_logs, "loop_end")
    assert end["level"] == "error" and "this module is broken on purpose" in end["error"]


@pytest.mark.parametrize("path", ["sample_handlers.missing", "sample_handlers.not_callable", "no_such_module.h"])
def test_handler_paths_that_name_nothing_callable(rig_factory: Any, path: str) -> None:
    rig: LoopRig = rig_factory(handler=path)
    assert rig.run(rig.create_token(), budget_s=6).reason == "handler_import_error"


def test_deleted_queue_ends_the_loop_with_a_clear_error(rig_factory: Any, loop_logs: Any) -> None:
    rig: LoopRig = rig_factory()
    step = rig.create_token()
    rig.sqs.delete_queue(QueueUrl=rig.url)

    receives: list[Any] = []
    rig.sqs.meta.events.register("before-call.sqs.ReceiveMessage", lambda **kwargs: receives.append(kwargs))
    outcome = rig.run(step, budget_s=8)

    assert (outcome.reason, outcome.recursed) == ("queue_unavailable", False)
    assert len(receives) == 1  # no retry storm: a deleted queue is final, counted in calls, not in seconds
    (end,) = log_events(loop_logs, "loop_end")
    assert end["level"] == "error" and "NonExistentQueue" in end["error"]
    assert "NonExistentQueue" in (rig.tokens.get(rig.url, "slot-1").last_error or "")  # type: ignore[union-attr]


def test_failed_recursion_is_retried_then_logged(rig_factory: Any, loop_logs: Any) -> None:
    from botocore.exceptions import ClientError

    rig: LoopRig = rig_factory()
    rig.invoker.fail_with = ClientError(
        {"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"}, "ResponseMetadata": {}}, "Invoke"
    )
    outcome = rig.run(rig.create_token(), budget_s=6)

    assert (outcome.reason, outcome.recursed) == ("recursion_failed", False)
    assert len(log_events(loop_logs, "transient_error")) == 4  # 5 attempts in all
    (failed,) = log_events(loop_logs, "recursion_failed")
    assert failed["function"] == FUNCTION_ARN and "TooManyRequestsException" in failed["error"]


def test_heartbeat_times_are_epoch_milliseconds_of_the_wall_clock(rig_factory: Any) -> None:
    from freezegun import freeze_time

    rig: LoopRig = rig_factory()
    step = rig.create_token()
    # tick: long polls must see time pass. Powertools' lazy modules must not be imported by freezegun's
    # scan of sys.modules while datetime is faked (its pydantic models would then fail to build).
    with freeze_time("2026-11-22 12:00:00", tick=True, ignore=["aws_lambda_powertools"]):
        rig.run(step, budget_s=6)
    row = rig.tokens.get(rig.url, step.token)
    assert row is not None and row.last_used is not None
    assert 1_795_348_800_000 <= row.last_used < 1_795_348_800_000 + 10_000


def test_an_invocation_too_short_for_one_batch_stops_with_an_error(rig_factory: Any, loop_logs: Any) -> None:
    rig: LoopRig = rig_factory(handler_timeout_s=1)
    outcome = rig.run(rig.create_token(), budget_s=4.5)  # 1 s poll + 1 s handler + 3 s reserve do not fit
    assert (outcome.reason, outcome.recursed) == ("invocation_too_short", False)  # no recursion storm
    assert "raise the function's timeout" in (rig.tokens.get(rig.url, "slot-1").last_error or "")  # type: ignore[union-attr]


def test_a_retire_taken_back_before_the_loop_releases_keeps_the_loop(rig_factory: Any) -> None:
    rig: LoopRig = rig_factory(poller="poller: {heartbeat_s: 1}")
    send(rig.sqs, rig.url, ["m"])
    step = rig.create_token()

    def retire_then_take_back(event: dict[str, Any], context: Any) -> None:
        rig.tokens.retire(rig.url, step.token, now_ms=int(time.time() * 1000))
        time.sleep(1.6)  # the keeper's heartbeat sees the request
        seen = rig.tokens.get(rig.url, step.token)
        assert seen is not None
        rig.tokens.unretire(seen)  # a scale-up wants the loop after all

    sample_handlers.use(retire_then_take_back)
    outcome = rig.run(step, budget_s=8)

    assert (outcome.reason, outcome.recursed, outcome.batches) == ("retire_withdrawn", True, 1)
    assert rig.tokens.get(rig.url, step.token) is not None


class ExplodingSqs:
    def __init__(self, real: Any):
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def receive_message(self, **_: Any) -> Any:
        raise RuntimeError("a bug nobody foresaw")


def test_an_unforeseen_error_is_logged_and_left_on_the_row(rig_factory: Any, loop_logs: Any) -> None:
    rig: LoopRig = rig_factory()
    outcome = rig.run(rig.create_token(), budget_s=6, sqs_client=ExplodingSqs(rig.sqs))
    assert (outcome.reason, outcome.recursed) == ("unexpected_error", False)
    assert "a bug nobody foresaw" in log_events(loop_logs, "unexpected_error")[0]["traceback"]
    assert "RuntimeError" in (rig.tokens.get(rig.url, "slot-1").last_error or "")  # type: ignore[union-attr]


def test_a_missing_token_table_ends_the_loop_with_a_log_line_not_a_crash(rig_factory: Any, loop_logs: Any) -> None:
    rig: LoopRig = rig_factory()
    step = rig.create_token()
    rig.tokens.model.delete_table()
    outcome = rig.run(step, budget_s=6)
    assert (outcome.reason, outcome.recursed) == ("unexpected_error", False)
    (end,) = log_events(loop_logs, "loop_end")
    assert end["level"] == "error" and "ResourceNotFound" in end["error"]
