"""Runs against moto (docs/runs.md): counting under duplicate delivery, a crash before the delete and
retried writes; children across queues; the DLQ path; exactly one notice under concurrent final writes."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import boto3
import pytest
import sample_handlers
from conftest import REGION, config_for, count, log_events, make_queue
from runs_rig import CrashingDeletes, LostAnswers, Notices, SerialDynamoDB, book, run_loop
from test_producer import FaultyBatches, error

import producer
from poller.lease.tokens import TokenStore
from poller.runs import RUN_ATTRIBUTE, RunBook, RunCounter, RunFinished, UnknownRun
from poller.sqs.client import QueueClient
from poller.sqs.records import Message
from poller.sqs.redrive import RedriveLimit
from producer.exceptions import MessageTooLarge
from producer.runs import take_back
from producer.send import SendIncomplete


@pytest.fixture
def notices(sqs: Any, tokens: TokenStore) -> Notices:
    return Notices.create(sqs)


def receive(sqs: Any, url: str, n: int = 10) -> list[Message]:
    return list(
        sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=n, MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"]
        ).get("Messages", [])
    )


def counter(sqs: Any, url: str, runs: RunBook, **settings: object) -> RunCounter:
    queue = config_for(url, **settings).queue("work")
    return RunCounter(
        runs,
        queue=queue,
        redrive=RedriveLimit(
            QueueClient(sqs, url, runs.clock, random.Random(1)), fallback=queue.known_max_receives, log_fields={}
        ),
        retry=lambda call, _: call(),
        log_fields={},
    )


def test_a_run_is_counted_and_announced_once(sqs: Any, tokens: TokenStore, notices: Notices) -> None:
    url = make_queue(sqs, "pages")
    runs = book(notices)
    run = producer.start_run("crawl-1", book=runs)
    report = producer.send_messages(sqs, url, [f"page {n}" for n in range(25)], run=run, book=runs)
    assert report.ok
    assert producer.run_status(run, book=runs).as_dict() | {"started_at": 0} == {  # type: ignore[union-attr]
        "run": "crawl-1",
        "total": 25,
        "done": 0,
        "failed": 0,
        "state": "running",
        "started_at": 0,
        "finished_at": None,
        "notified_at": None,
    }

    run_loop(sqs, tokens, url, runs)

    status = producer.run_status("crawl-1", book=runs)
    assert status is not None and (status.total, status.done, status.failed, status.state) == (25, 25, 0, "finished")
    assert status.pending == (frozenset(), frozenset())  # every id deleted was forgotten again
    (notice,) = notices.received()
    assert {k: notice[k] for k in ("run", "total", "done", "failed")} == {
        "run": "crawl-1",
        "total": 25,
        "done": 25,
        "failed": 0,
    }
    assert notice["duration_s"] >= 0 and notice["finished_at"] >= notice["started_at"]
    assert status.notified_at is not None


def test_records_name_their_run_and_plain_messages_cost_nothing(sqs: Any, tokens: TokenStore, notices: Notices) -> None:
    url = make_queue(sqs, "mixed")
    runs = book(notices)
    producer.start_run("r", book=runs)
    producer.send_messages(sqs, url, ["in the run"], run="r", book=runs)
    producer.send_messages(sqs, url, ["plain"])
    seen_runs: dict[str, Any] = {}
    sample_handlers.use(lambda event, _: seen_runs.update({r["body"]: producer.run_of(r) for r in event["Records"]}))
    calls: list[str] = []
    client = runs.table.client
    client.meta.events.register("before-call.dynamodb.UpdateItem", lambda **_: calls.append("update"))

    run_loop(sqs, tokens, url, runs)

    assert seen_runs == {"in the run": producer.Run("r"), "plain": None}
    # The batch's count write, the claim, the notice's mark, and the invocation's last forget: none for
    # the plain message.
    assert len(calls) == 4


def test_a_duplicate_delivery_counts_once(sqs: Any, tokens: TokenStore, notices: Notices) -> None:
    url = make_queue(sqs, "dups")
    runs = book(notices)
    producer.start_run("d", book=runs)
    producer.send_messages(sqs, url, ["a", "b"], run="d", book=runs)
    first = receive(sqs, url)
    # SQS's own duplicate of a standard queue: a second loop gets the same messages (receive count 1).
    counter(sqs, url, runs).count(first, [])
    counter(sqs, url, runs).count(first, [])
    status = runs.table.get("d")
    assert status is not None and (status.done, status.state) == (2, "finished")
    assert len(notices.received()) == 1


def test_a_crash_between_handler_and_delete_counts_once(sqs: Any, tokens: TokenStore, notices: Notices) -> None:
    url = make_queue(sqs, "crash")
    runs = book(notices)
    producer.start_run("c", book=runs)
    producer.send_messages(sqs, url, [f"m{n}" for n in range(8)], run="c", book=runs)
    crashing = CrashingDeletes(sqs)

    first = run_loop(sqs, tokens, url, runs, sqs_client=crashing, token="slot-1", loop_id="dying")
    assert first.reason == "unexpected_error"
    status = runs.table.get("c")
    assert status is not None and (status.done, status.state) == (8, "finished")  # counted before the delete
    assert len(notices.received()) == 1
    crashing.release(url)  # their visibility ends: SQS delivers them again (receive count 2)

    run_loop(sqs, tokens, url, runs, token="slot-2", loop_id="restarted")

    assert sorted(r["body"] for r in sample_handlers.seen).count("m0") == 2  # handled twice, at least once
    status = runs.table.get("c")
    assert status is not None and (status.total, status.done, status.failed) == (8, 8, 0)
    assert count(sqs, url) == (0, 0)
    assert notices.received() == []  # no second notice


@pytest.mark.parametrize(
    "write",
    [
        "ADD #d :done",  # a loop's count write
        "ADD #t :n, #s :ids",  # the producer's grow before its send
        "ADD #t :n DELETE #s :ids",  # the producer's settle after it
    ],
)
def test_a_retried_write_counts_once(sqs: Any, tokens: TokenStore, notices: Notices, write: str) -> None:
    url = make_queue(sqs, "retried")
    lossy = LostAnswers(boto3.client("dynamodb", region_name=REGION), match=write, times=2)
    runs = book(notices, lossy)
    producer.start_run("w", book=runs)
    producer.send_messages(sqs, url, [f"m{n}" for n in range(15)], run="w", book=runs)

    run_loop(sqs, tokens, url, runs)

    assert lossy.lost >= 1
    status = runs.table.get("w")
    assert status is not None and (status.total, status.done, status.state) == (15, 15, "finished")
    assert len(notices.received()) == 1


def test_concurrent_final_writes_announce_once(sqs: Any, tokens: TokenStore, notices: Notices) -> None:
    url = make_queue(sqs, "final")
    serial = SerialDynamoDB(boto3.client("dynamodb", region_name=REGION))
    producer.start_run("f", book=book(notices, serial))
    producer.send_messages(sqs, url, [f"m{n}" for n in range(40)], run="f", book=book(notices, serial))
    batches = [receive(sqs, url) for _ in range(4)]
    assert sum(map(len, batches)) == 40
    # Four loops count their last batches at once, each with a book of its own; and each retries its write
    # as if its answer was lost, so that every one of them sees the run complete and tries the claim.
    start = threading.Barrier(4)

    def final_batch(messages: list[Message]) -> None:
        runs = book(notices, serial)
        start.wait()
        counter(sqs, url, runs).count(messages, [])
        status = runs.table.get("f")
        assert status is not None
        runs.notifier.check(status)

    threads = [threading.Thread(target=final_batch, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    status = book(notices).table.get("f")
    assert status is not None and (status.done, status.state) == (40, "finished")
    assert len(notices.received()) == 1


def test_children_across_queues_keep_the_run_open(sqs: Any, tokens: TokenStore, notices: Notices) -> None:
    pages = make_queue(sqs, "pages")
    parse = make_queue(sqs, "parse")
    runs = book(notices)
    producer.start_run("tree", book=runs)
    producer.send_messages(sqs, pages, ["p1", "p2", "p3"], run="tree", book=runs)

    def fan_out(event: dict[str, Any], _: Any) -> None:
        for record in event["Records"]:
            if record["body"].startswith("p"):
                children = [f"child-{record['body']}-{n}" for n in range(2)]
                producer.send_messages(sqs, parse, children, run=producer.run_of(record), book=runs)

    sample_handlers.use(fan_out)
    run_loop(sqs, tokens, pages, runs)
    status = runs.table.get("tree")
    assert status is not None and (status.total, status.done, status.state) == (9, 3, "running")
    assert notices.received() == []

    run_loop(sqs, tokens, parse, runs, config=config_for(parse))

    status = runs.table.get("tree")
    assert status is not None and (status.total, status.done, status.state) == (9, 9, "finished")
    (notice,) = notices.received()
    assert (notice["total"], notice["done"]) == (9, 9)


def test_the_dlq_path_counts_failed_once_and_a_redrive_moves_it_to_done(
    sqs: Any, tokens: TokenStore, notices: Notices
) -> None:
    url = make_queue(sqs, "poison", dlq_after=2)
    dlq = url + "-dlq"
    runs = book(notices)
    producer.start_run("p", book=runs)
    producer.send_messages(sqs, url, ["good", "bad"], run="p", book=runs)
    fail_bad = lambda event, _: {  # noqa: E731
        "batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "bad"]
    }
    sample_handlers.use(fail_bad)
    # The queue's own policy (2 receives) wins over the config's figure.
    settings = {"dlq": "poison-dlq", "max_receive_count": 9, "visibility_timeout_s": 3}

    run_loop(sqs, tokens, url, runs, config=config_for(url, **settings), budget_s=10)

    status = runs.table.get("p")
    assert status is not None and (status.done, status.failed, status.state) == (1, 1, "finished")
    assert len(notices.received()) == 1
    time.sleep(3)  # its visibility ends; the next receive moves it to the DLQ instead of delivering it
    assert receive(sqs, url) == [] and count(sqs, dlq)[0] == 1
    # A redrive sends the dead letter again (a new MessageId, the same run attribute); now it succeeds.
    (dead,) = receive(sqs, dlq)
    sqs.send_message(QueueUrl=url, MessageBody=dead["Body"], MessageAttributes=dead["MessageAttributes"])
    sqs.delete_message(QueueUrl=dlq, ReceiptHandle=dead["ReceiptHandle"])
    sample_handlers.use(lambda event, _: None)

    run_loop(sqs, tokens, url, runs, config=config_for(url, **settings))

    status = runs.table.get("p")
    assert status is not None and (status.total, status.done, status.failed) == (2, 2, 0)
    assert status.state == "finished" and notices.received() == []  # finished stays finished; one notice


def test_failures_before_the_last_receive_are_not_counted(sqs: Any, tokens: TokenStore) -> None:
    url = make_queue(sqs, "flaky", dlq_after=3)
    runs = book(None)
    producer.start_run("fl", book=runs)
    producer.send_messages(sqs, url, ["x"], run="fl", book=runs)
    messages = receive(sqs, url)
    counter(sqs, url, runs).count([], messages)  # receive 1 of 3: SQS will deliver it again
    status = runs.table.get("fl")
    assert status is not None and (status.done, status.failed) == (0, 0)


def test_what_sqs_refused_is_taken_back(sqs: Any, tokens: TokenStore, notices: Notices) -> None:
    url = make_queue(sqs, "refusing")
    runs = book(notices)
    producer.start_run("t", book=runs)
    refusing = FaultyBatches(sqs, refuse={"refused"})
    report = producer.send_messages(refusing, url, ["refused", "sent", "refused"], run="t", book=runs)
    assert len(report.failed) == 2
    status = runs.table.get("t")
    assert status is not None and (status.total, status.sends) == (1, frozenset())
    # A send that stops midway takes back what it never sent.
    refusing.raise_on_call = {len(refusing.calls) + 1: error("AccessDenied")}
    with pytest.raises(SendIncomplete):
        producer.send_messages(refusing, url, ["a", "b"], run="t", book=runs)
    status = runs.table.get("t")
    assert status is not None and (status.total, status.sends) == (1, frozenset())
    run_loop(sqs, tokens, url, runs)
    status = runs.table.get("t")
    assert status is not None and (status.total, status.done, status.state) == (1, 1, "finished")


def test_a_take_back_that_completes_the_run_announces_it(sqs: Any, tokens: TokenStore, notices: Notices) -> None:
    url = make_queue(sqs, "late-refusal")
    runs = book(notices)
    producer.start_run("late", book=runs)
    # A send under way (grown by 1) while an earlier send's message is handled and counted.
    runs.table.grow("late", 1, send_id="slow-send")
    producer.send_messages(sqs, url, ["x"], run="late", book=runs)
    run_loop(sqs, tokens, url, runs)
    status = runs.table.get("late")
    assert status is not None and (status.total, status.done, status.state) == (2, 1, "running")

    take_back(runs, "late", "slow-send", 1, clock=runs.clock)  # SQS refused the slow send's message

    status = runs.table.get("late")
    assert status is not None and (status.total, status.done, status.state) == (1, 1, "finished")
    assert len(notices.received()) == 1


def test_sending_into_an_unknown_or_finished_run_is_refused(sqs: Any, tokens: TokenStore, notices: Notices) -> None:
    url = make_queue(sqs, "refused")
    runs = book(notices)
    with pytest.raises(UnknownRun):
        producer.send_messages(sqs, url, ["x"], run="never-started", book=runs)
    assert count(sqs, url) == (0, 0)
    producer.start_run("once", book=runs)
    producer.send_messages(sqs, url, ["x"], run="once", book=runs)
    run_loop(sqs, tokens, url, runs)
    with pytest.raises(RunFinished):
        producer.send_messages(sqs, url, ["late"], run="once", book=runs)


def test_a_message_of_a_run_carries_one_attribute(sqs: Any, tokens: TokenStore) -> None:
    url = make_queue(sqs, "attr")
    runs = book(None)
    producer.start_run("a", book=runs)
    producer.send_messages(sqs, url, ["x", "y"], run="a", book=runs)
    messages = receive(sqs, url)
    assert [set(m["MessageAttributes"]) for m in messages] == [{RUN_ATTRIBUTE}] * 2
    ids = {m["MessageAttributes"][RUN_ATTRIBUTE]["StringValue"] for m in messages}
    assert len(ids) == 2  # each its own item id


def test_a_bad_run_tag_is_handled_and_not_counted(
    sqs: Any, tokens: TokenStore, notices: Notices, loop_logs: Any
) -> None:
    url = make_queue(sqs, "badtag")
    runs = book(notices)
    sqs.send_message(
        QueueUrl=url, MessageBody="x", MessageAttributes={RUN_ATTRIBUTE: {"DataType": "String", "StringValue": "{oops"}}
    )
    run_loop(sqs, tokens, url, runs)
    assert sample_handlers.bodies() == ["x"] and count(sqs, url) == (0, 0)
    assert log_events(loop_logs, "bad_run_tag")


def test_restart_publishes_a_notice_whose_publish_failed(sqs: Any, tokens: TokenStore, notices: Notices) -> None:
    url = make_queue(sqs, "republish")
    broken = RunBook.of(boto3.client("dynamodb", region_name=REGION), "sqs-loops-test-tokens", publish=None)
    producer.start_run("rp", book=broken)
    producer.send_messages(sqs, url, ["x"], run="rp", book=broken)
    run_loop(sqs, tokens, url, broken)
    status = broken.table.get("rp")
    assert status is not None and status.state == "finished" and status.notified_at is None
    assert notices.received() == []

    later = book(notices)
    assert later.notifier.republish_unannounced() == []  # too early: the claimer may still be publishing
    later.clock = _Later(later.clock, seconds=300)  # type: ignore[assignment]
    later.notifier.clock = later.clock
    assert later.notifier.republish_unannounced() == ["rp"]
    assert len(notices.received()) == 1
    assert later.notifier.republish_unannounced() == []


class _Later:
    def __init__(self, clock: Any, seconds: float):
        self.clock, self.seconds = clock, seconds

    def time(self) -> float:
        return float(self.clock.time()) + self.seconds

    def monotonic(self) -> float:
        return float(self.clock.monotonic())

    def sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)


def test_the_run_attribute_counts_toward_the_message_size(sqs: Any, tokens: TokenStore) -> None:
    url = make_queue(sqs, "sized")
    runs = book(None)
    producer.start_run("s", book=runs)
    with pytest.raises(MessageTooLarge):  # fits without the attribute, not with it: refused before any send
        producer.send_messages(sqs, url, ["x" * 990], run="s", book=runs, max_message_bytes=1000)
    producer.send_messages(sqs, url, ["x" * 990], max_message_bytes=1000)
    status = runs.table.get("s")
    assert status is not None and status.total == 0 and count(sqs, url) == (1, 0)
    plain = producer.send_messages(sqs, url, ["x" * 480] * 3, max_message_bytes=1000)
    tagged = producer.send_messages(sqs, url, ["x" * 480] * 3, run="s", book=runs, max_message_bytes=1000)
    # Two plain 480-byte messages fit a 1,000-byte batch; with the attribute each is over 500 bytes.
    assert (plain.batches, tagged.batches) == (2, 3) and tagged.ok


def test_at_most_one_count_write_per_run_per_batch(
    sqs: Any, tokens: TokenStore, notices: Notices, loop_logs: Any
) -> None:
    url = make_queue(sqs, "two-runs")
    runs = book(notices)
    for name in ("a", "b"):
        producer.start_run(name, book=runs)
    for n in range(15):  # interleaved, so that most batches hold messages of both runs
        producer.send_messages(sqs, url, [f"a{n}"], run="a", book=runs)
        producer.send_messages(sqs, url, [f"b{n}"], run="b", book=runs)
    writes: list[str] = []
    runs.table.client.meta.events.register(
        "provide-client-params.dynamodb.UpdateItem",
        lambda params, **_: writes.append(params["Key"]["token"]["S"]) if ":done" in str(params) else None,
    )

    run_loop(sqs, tokens, url, runs)

    batches = len(log_events(loop_logs, "batch"))
    assert batches >= 3
    assert len(writes) <= 2 * batches and writes.count("a") <= batches and writes.count("b") <= batches
    assert [runs.table.get(name).done for name in ("a", "b")] == [15, 15]  # type: ignore[union-attr]
