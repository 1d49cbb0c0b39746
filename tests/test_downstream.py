"""Protecting what sits downstream, one loop against moto: concurrency with per-record results, retry
backoff, a rate limit on a fake clock, and forwarding to a real HTTP server and to a function in the local
Lambda runtime."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import sample_handlers
from conftest import FakeClock, LoopRig, count, log_events, send

import poller.targets.function
from poller.config import RetryBackoff
from poller.downstream.dispatch import BatchResult, Dispatcher
from poller.downstream.shares import SWITCH_S, max_window
from poller.downstream.state import store_beside
from poller.lease.step import LoopStep
from poller.loop.redelivery import redelivery_delay_s
from poller.targets.base import RETRY, Failure
from poller.timing import DRAIN_MARGIN_S
from sandbox import loopback
from sandbox.lambda_runtime import LocalFunction, LocalLambda


def test_concurrency_runs_records_in_parallel_and_keeps_only_the_failed(rig_factory: Any) -> None:
    rig: LoopRig = rig_factory(concurrency=4, batch_size=8, handler_timeout_s=2)
    send(rig.sqs, rig.url, [f"m{n}" for n in range(6)] + ["bad-1", "bad-2"])
    running, most = [0], [0]
    lock = threading.Lock()

    def slow_record(event: dict[str, Any], context: Any) -> Any:
        assert len(event["Records"]) == 1  # an ordinary trigger handler, handed one record at a time
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        record = event["Records"][0]
        if record["body"].startswith("bad"):
            return {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
        return None

    sample_handlers.use(slow_record)
    outcome = rig.run(rig.create_token(), budget_s=7)

    assert most[0] >= 3  # 4 threads; at least 3 overlapped even on a busy machine
    assert (outcome.succeeded, outcome.failed) == (6, 2)
    assert count(rig.sqs, rig.url) == (0, 2)  # the two failures wait out their visibility timeout


def test_a_raising_record_fails_only_itself(rig_factory: Any) -> None:
    rig: LoopRig = rig_factory(concurrency=2, batch_size=4)
    send(rig.sqs, rig.url, ["a", "boom", "b", "c"])

    def raise_on_boom(event: dict[str, Any], context: Any) -> None:
        if event["Records"][0]["body"] == "boom":
            raise RuntimeError("vendor said no")

    sample_handlers.use(raise_on_boom)
    outcome = rig.run(rig.create_token(), budget_s=6)
    assert (outcome.succeeded, outcome.failed) == (3, 1)


def test_retry_backoff_brings_a_failure_back_sooner_and_later_each_time(rig_factory: Any, loop_logs: Any) -> None:
    rig: LoopRig = rig_factory(retry_backoff={"base_s": 1, "max_s": 8}, visibility_timeout_s=60)
    send(rig.sqs, rig.url, ["always-fails"])
    sample_handlers.use(
        lambda event, context: {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    )

    rig.run(rig.create_token(), budget_s=8)

    delays = [next(iter(line["delays_s"].values())) for line in log_events(loop_logs, "retry_backoff")]
    counts = [int(r["attributes"]["ApproximateReceiveCount"]) for r in sample_handlers.seen]
    # Without the backoff the message would stay away for its 60-s visibility timeout: seen once.
    assert counts[:2] == [1, 2] and len(delays) == len(counts)
    assert delays[0] == 1 and 1 <= delays[1] <= 2


def test_backoff_delays_grow_with_the_receive_count_within_their_bounds() -> None:
    backoff = RetryBackoff(base_s=5, max_s=300)
    rand = random.Random(3)

    def delay(receives: int, failure: Failure = RETRY) -> int | None:
        return redelivery_delay_s(failure, {"Attributes": {"ApproximateReceiveCount": str(receives)}}, backoff, rand)

    for receives, ceiling in [(1, 5), (2, 10), (3, 20), (4, 40), (7, 300), (500, 300)]:
        draws = [delay(receives) for _ in range(200)]
        assert all(d is not None and 5 <= d <= ceiling for d in draws)
        assert len(set(draws)) > (1 if ceiling > 5 else 0)  # jittered, not in step
    assert delay(1, Failure(retry_after_s=120)) == 120  # the downstream's Retry-After is a floor
    assert delay(3, Failure(permanent=True)) == 0  # a 4xx: straight back, toward the DLQ
    # without a DLQ, straight back would be a tight cycle: it waits like any failure
    no_dlq = redelivery_delay_s(Failure(permanent=True), {}, backoff, rand, has_dlq=False)
    assert no_dlq is not None and 5 <= no_dlq <= 5
    assert redelivery_delay_s(Failure(permanent=True), {}, None, rand, has_dlq=False) is None
    assert redelivery_delay_s(Failure(), {}, None, rand) is None  # no backoff: the visibility timeout decides
    assert redelivery_delay_s(Failure(retry_after_s=99999), {}, None, rand) == 43200  # SQS's 12 h


def test_a_rate_limit_paces_calls_and_a_lone_loop_starts_at_once(rig_factory: Any) -> None:
    clock = FakeClock()
    # 4 a second for up to 2 loops: alone on its state row, this loop gets all 4 at once (no hold-back).
    rig: LoopRig = rig_factory(clock=clock, rate_limit=4, max_loops=2, handler_timeout_s=1)
    send(rig.sqs, rig.url, [f"m{n}" for n in range(60)])
    calls: list[float] = []
    sample_handlers.use(lambda event, context: calls.append(clock.monotonic()))

    outcome = rig.run(rig.create_token(), budget_s=10)

    assert calls and calls[0] < 0.5
    # at most one call a slot (1/4 s), a late one catching up at most TURN_HORIZON_S: 20 (+1 at the edge) in 5 s
    assert max_window(calls, 5.0) <= 21
    assert len(calls) >= 0.9 * 4 * (calls[-1] - calls[0])
    assert len(sample_handlers.seen) == len(calls)  # a whole batch no bigger than its turn pays for
    row = rig.tokens.model.get("#downstream:queue:work", "state", consistent_read=True)
    assert row is not None and 1 <= outcome.loop_counts <= 4  # one refresh a REFRESH_S, plus the first


def rate_limited_loop(rig_factory: Any) -> tuple[FakeClock, LoopRig, LoopStep]:
    """A loop on a queue of 80 messages limited to 4 a second, on a fake clock."""
    clock = FakeClock()
    rig: LoopRig = rig_factory(clock=clock, poller="poller: {heartbeat_s: 1}", rate_limit=4, handler_timeout_s=1)
    send(rig.sqs, rig.url, [f"m{n}" for n in range(80)])
    return clock, rig, rig.create_token()


def test_a_retiring_loop_spends_its_share_until_its_0_counts_then_releases_its_row(
    rig_factory: Any, loop_logs: Any
) -> None:
    clock, rig, step = rate_limited_loop(rig_factory)
    calls: list[float] = []

    def retire_at_the_first_call(event: dict[str, Any], context: Any) -> None:
        if not calls:
            rig.tokens.retire(rig.url, step.token, now_ms=int(clock.time() * 1000))
        calls.append(clock.monotonic())

    sample_handlers.use(retire_at_the_first_call)
    outcome = rig.run(step, budget_s=60)

    assert (outcome.reason, outcome.recursed) == ("retired", False)
    (drain,) = log_events(loop_logs, "draining_share")
    assert SWITCH_S - 1 <= drain["for_s"] <= SWITCH_S
    # it went on at its share (4 a second) until about DRAIN_MARGIN_S before its 0 counted, not one batch
    assert 4 * (SWITCH_S - DRAIN_MARGIN_S - 2) <= len(calls) <= 4 * (SWITCH_S + 2)
    assert rig.tokens.get(rig.url, step.token) is None
    (lane,) = store_beside(rig.tokens).read("queue:work")
    assert lane.demand == 0 and lane.released  # its 0 announced, its lane free for the token's next loop


def test_a_retiring_loop_whose_step_ends_first_spends_the_rest_of_its_share_in_the_next_step(
    rig_factory: Any, loop_logs: Any
) -> None:
    clock, rig, step = rate_limited_loop(rig_factory)
    sample_handlers.use(lambda event, context: None)
    rig.run(step, budget_s=10)  # its lane counts (a share of 4 a second); 40 messages left
    _, payload = rig.invoker.calls[-1]
    rig.tokens.retire(rig.url, step.token, now_ms=int(clock.time() * 1000))

    first = rig.run(LoopStep(**payload), budget_s=8)  # ends before its share does

    assert (first.reason, first.recursed) == ("draining", True)
    second = rig.run(LoopStep(**rig.invoker.calls[-1][1]), budget_s=60)
    assert (second.reason, second.recursed) == ("retired", False) and second.succeeded > 0
    ends = [line["for_s"] for line in log_events(loop_logs, "draining_share")]
    assert len(ends) == 2 and ends[1] < ends[0]  # the same end: its lane's 0, written once
    assert rig.tokens.get(rig.url, step.token) is None


# -- forwarding to HTTP --------------------------------------------------------------------------------


class Vendor:
    """A real HTTP server on loopback that answers by the body: ok 200, busy 429 (Retry-After 2), down
    503, hold on 503 (Retry-After 1), bad 400, moved 301, slow after 2 s; per batch, it fails the records whose body
    is bad."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.times: list[tuple[float, bytes]] = []  # (monotonic arrival, body)
        self.server, self.url = loopback.serve(self.answer, name="test-vendor")

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        self.requests.append((dict(request.headers), body))
        self.times.append((time.monotonic(), body))
        text = body.decode()
        status, headers, out = 200, {}, b""
        if text.startswith('{"Records"'):
            failed = [{"itemIdentifier": r["messageId"]} for r in json.loads(text)["Records"] if r["body"] == "bad"]
            out = json.dumps({"batchItemFailures": failed}).encode()
        elif text == "busy":
            status, headers = 429, {"Retry-After": "2"}
        elif text == "hold on":
            status, headers = 503, {"Retry-After": "1"}
        elif text == "down":
            status = 503
        elif text == "moved":
            status, headers = 301, {"Location": "/elsewhere"}
        elif text == "bad":
            status = 400
        elif text == "slow":
            time.sleep(2)
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(out)))
        request.end_headers()
        try:
            request.wfile.write(out)
        except BrokenPipeError:  # the client gave up on a slow answer, as it should
            return


@pytest.fixture
def vendor() -> Iterator[Vendor]:
    server = Vendor()
    yield server
    loopback.stop(server.server)


def test_http_per_record_sorts_answers_into_done_retry_later_and_toward_the_dlq(
    rig_factory: Any, vendor: Vendor, loop_logs: Any
) -> None:
    http = {"url": vendor.url + "/jobs", "timeout_s": 0.5, "headers": {"Authorization": "Bearer t"}}
    rig: LoopRig = rig_factory(
        handler=None,
        http=http,
        retry_backoff={"base_s": 1, "max_s": 60},
        batch_size=10,
        dlq_after=3,
        dlq="work-queue-dlq",  # a permanent failure goes straight back only toward a DLQ the config names
    )
    send(rig.sqs, rig.url, ['{"job": 1}', "busy", "down", "bad", "slow"])

    outcome = rig.run(rig.create_token(), budget_s=11)  # the 429 pauses the loop for 2 s

    first = {body.decode(): headers for headers, body in vendor.requests}
    assert first['{"job": 1}']["Authorization"] == "Bearer t" and first['{"job": 1}']["X-Sqs-Message-Id"]
    assert outcome.succeeded == 1
    delays = {}
    for line in log_events(loop_logs, "retry_backoff"):  # after each message's first receive
        for message_id, delay in line["delays_s"].items():
            delays.setdefault(message_id, delay)
    refused: dict[int, Any] = {}
    for line in log_events(loop_logs, "forward_refused"):
        refused.setdefault(line["status"], line)
    assert refused[429]["retry_after_s"] == 2 and refused[400]["permanent"] is True
    busy_id, bad_id = refused[429]["message_ids"][0], refused[400]["message_ids"][0]
    assert delays[busy_id] == 2  # the Retry-After is a floor on the backoff (1 s after a first receive)
    assert delays[bad_id] == 0  # straight back: it reaches the DLQ after maxReceiveCount quick receives
    assert delays[refused[503]["message_ids"][0]] == 1
    (timed_out, *_) = [line for line in log_events(loop_logs, "forward_failed") if "Timeout" in line["error"]]
    assert delays[timed_out["message_ids"][0]] == 1
    assert sum(1 for _, body in vendor.requests if body == b"bad") >= 2  # received again at once


def test_a_retry_after_pauses_the_loop_not_just_the_record(rig_factory: Any, vendor: Vendor, loop_logs: Any) -> None:
    rig: LoopRig = rig_factory(handler=None, http=vendor.url, batch_size=10)
    send(rig.sqs, rig.url, ["hold on", "a", "b", "c"])

    outcome = rig.run(rig.create_token(), budget_s=9)  # + a forwarding target's connect time

    assert outcome.succeeded == 3
    (refused_at,) = [at for at, body in vendor.times if body == b"hold on"]
    after = [at - refused_at for at, body in vendor.times if at > refused_at]
    assert after and min(after) >= 0.9  # nothing went out during the 1 s the vendor asked for
    (pause,) = log_events(loop_logs, "downstream_pause")
    assert pause["pause_s"] == 1


def test_http_per_batch_posts_the_trigger_event_and_honours_its_failures(rig_factory: Any, vendor: Vendor) -> None:
    rig: LoopRig = rig_factory(handler=None, http={"url": vendor.url, "per": "batch"}, batch_size=10)
    send(rig.sqs, rig.url, ["a", "bad", "b"])

    outcome = rig.run(rig.create_token(), budget_s=9)  # + a forwarding target's connect time

    (_, body), *_ = vendor.requests
    assert [r["body"] for r in json.loads(body)["Records"]] == ["a", "bad", "b"]
    assert (outcome.succeeded, outcome.failed) == (2, 1)
    assert count(rig.sqs, rig.url) == (0, 1)


# -- forwarding to a function --------------------------------------------------------------------------


@pytest.fixture
def local_lambda(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalLambda]:
    runtime = LocalLambda(functions={"orders-worker": LocalFunction("orders-worker", "sample_handlers.dispatch", 5)})
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", runtime.start())
    poller.targets.function.sync_lambda_client.cache_clear()
    yield runtime
    runtime.stop()
    poller.targets.function.sync_lambda_client.cache_clear()


def test_function_target_gets_the_batch_and_its_failures_are_honoured(
    rig_factory: Any, local_lambda: LocalLambda
) -> None:
    rig: LoopRig = rig_factory(handler=None, function="orders-worker", batch_size=10)
    send(rig.sqs, rig.url, ["a", "bad", "b"])
    sample_handlers.use(
        lambda event, context: {
            "batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "bad"]
        }
    )

    outcome = rig.run(rig.create_token(), budget_s=9)  # + a forwarding target's connect time

    assert sorted(sample_handlers.bodies()) == ["a", "b", "bad"]
    assert sample_handlers.seen[0]["eventSource"] == "aws:sqs"
    assert (outcome.succeeded, outcome.failed) == (2, 1) and local_lambda.invocations == 1
    assert count(rig.sqs, rig.url) == (0, 1)


def test_a_function_that_raises_fails_the_whole_batch(
    rig_factory: Any, local_lambda: LocalLambda, loop_logs: Any
) -> None:
    rig: LoopRig = rig_factory(handler=None, function="orders-worker", batch_size=10)
    send(rig.sqs, rig.url, ["a", "b"])

    def fail(event: dict[str, Any], context: Any) -> None:
        raise ValueError("database down")

    sample_handlers.use(fail)
    outcome = rig.run(rig.create_token(), budget_s=9)  # + a forwarding target's connect time

    assert (outcome.succeeded, outcome.failed) == (0, 2)
    (line,) = log_events(loop_logs, "function_error")
    assert line["kind"] == "Unhandled" and "database down" in line["error"]


def test_a_redirect_is_not_followed_but_fails_toward_the_dlq(rig_factory: Any, vendor: Vendor, loop_logs: Any) -> None:
    """A followed redirect would turn the POST into a GET without the body, answered 200: a message lost."""
    rig: LoopRig = rig_factory(handler=None, http=vendor.url + "/jobs")
    send(rig.sqs, rig.url, ["moved"])

    outcome = rig.run(rig.create_token(), budget_s=9)

    assert (outcome.succeeded, outcome.failed) == (0, 1)
    assert [body for _, body in vendor.requests] == [b"moved"]  # one POST, nothing sent after it
    (refused,) = log_events(loop_logs, "forward_refused")
    assert (refused["status"], refused["location"], refused["permanent"]) == (301, "/elsewhere", True)


def test_a_fifo_group_stops_at_its_first_failed_record_and_keeps_its_order() -> None:
    """Record by record on a FIFO queue: after a group's record fails, the group's later records are not
    sent but returned (SQS gives them out again only after the failed one); other groups go on."""
    sent: list[str] = []

    class ByBody:
        def send(self, event: dict[str, Any], context: Any, log_fields: dict[str, object]) -> dict[str, Failure]:
            (record,) = event["Records"]
            sent.append(record["body"])
            return {record["messageId"]: RETRY} if record["body"].startswith("down") else {}

    def message(n: int, group: str, body: str) -> dict[str, Any]:
        return {
            "MessageId": f"id-{n}",
            "ReceiptHandle": f"rh-{n}",
            "Body": body,
            "MD5OfBody": "",
            "Attributes": {"MessageGroupId": group},
        }

    batch = [message(1, "a", "a1"), message(2, "a", "down a2"), message(3, "b", "b1"), message(4, "a", "a3")]
    dispatcher = Dispatcher(
        ByBody(),
        per_record=True,
        concurrency=1,
        rate=None,
        arn="arn:aws:sqs:us-east-1:123456789012:work.fifo",
        region="us-east-1",
        clock=FakeClock(),
        log_fields={},
    )
    result = dispatcher.run(batch, None, may_start=lambda: True)

    assert sent == ["a1", "down a2", "b1"]
    assert list(result.failures) == ["id-2"] and [m["MessageId"] for m in result.returned] == ["id-4"]


class _Turn:
    """A loop's turns that record what the dispatcher tells them; each record waits ``wait_s`` for its turn."""

    def __init__(self, wait_s: float = 0.0):
        self.wait_s = wait_s
        self.told_s = 0.0

    def acquire(self, units: int, may_start: Any) -> bool:
        time.sleep(self.wait_s)
        return True

    def waited(self, seconds: float) -> None:
        self.told_s += seconds

    def calling(self, units: int) -> Any:
        from contextlib import nullcontext

        return nullcontext()


def _in_parallel(send_s: Callable[[str], float], turn: _Turn, records: int) -> BatchResult:
    """A batch of ``records`` on 4 threads, each record's call taking ``send_s(message id)``."""
    from poller.clock import SystemClock

    class Target:
        def send(self, event: dict[str, Any], context: Any, log_fields: dict[str, object]) -> dict[str, Failure]:
            time.sleep(send_s(event["Records"][0]["messageId"]))
            return {}

    dispatcher = Dispatcher(
        Target(),
        per_record=True,
        concurrency=4,
        rate=turn,  # type: ignore[arg-type]
        arn="arn:aws:sqs:us-east-1:123456789012:work",
        region="us-east-1",
        clock=SystemClock(),
        log_fields={},
    )
    batch = [{"MessageId": f"id-{n}", "ReceiptHandle": f"rh-{n}", "Body": "b", "MD5OfBody": ""} for n in range(records)]
    try:
        return dispatcher.run(batch, None, may_start=lambda: True)
    finally:
        dispatcher.close()


def test_records_in_parallel_waiting_side_by_side_count_as_one_loop_waiting() -> None:
    """The wait a batch reports (its pace's input: docs/scaling.md#limit-cap) and tells its shares (whether
    they hold the loop back) is the loop's time, not the record threads' waits summed: 8 records on 4
    threads, each waiting 0.2 s for its turn, wait 0.4 s."""
    turn = _Turn(wait_s=0.2)
    began = time.monotonic()
    result = _in_parallel(lambda _: 0.0, turn, 8)
    took_ms = (time.monotonic() - began) * 1000
    assert not result.failures and not result.returned
    assert 350 <= result.waited_ms <= took_ms  # two waves of 0.2 s; summed over the threads it was 1,600
    assert 350 <= turn.told_s * 1000 <= took_ms  # the shares were told the loop's wait too, not 1.6 s


def test_a_parallel_batchs_uneven_handler_times_are_not_waits_for_turns() -> None:
    """Records on 4 threads that never wait for a turn but take 0.05-0.4 s each: the batch's time its calls
    did not fill (the pace's wait) is not told to the shares as held back (the demo's stage 2 announced a
    backlog so, and kept a share it could not use)."""
    turn = _Turn()
    result = _in_parallel(lambda message_id: 0.4 if message_id == "id-0" else 0.05, turn, 4)
    assert result.waited_ms >= 200  # 0.4 s against a mean of 0.14 s: the pace counts the stragglers' time
    assert turn.told_s < 0.05  # but no record waited for a turn
