"""Send many messages to one queue in batches of 10, optionally with message timers (producer/plan.py).

For producers: your own code, a script, or a handler in Lambda that fans out jobs. Nothing here is
imported by the loop function (cold start). Every message is accounted for: it is sent, or it is named in
the report's ``failed`` with the reason, or the send stops with :class:`SendIncomplete` saying where.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from poller.aws.errors import error_code
from poller.aws.limits import SQS_MAX_BATCH
from poller.aws.retry import Backoff, retry_transient
from poller.clock import SYSTEM_CLOCK, Clock
from poller.exceptions import RetriesExhausted
from poller.logs import log
from poller.runs import RunBook, RunTag, check_run_name
from poller.sqs.entries import call_with_entry_retries
from poller.sqs.queue_ref import QueueRef
from producer.exceptions import BadSend, MessageTooLarge, SendIncomplete
from producer.plan import SpreadPlan, Timers
from producer.report import FailedMessage, SendReport
from producer.runs import Run, grow, run_book, take_back

SQS_MAX_PAYLOAD_BYTES = 1024 * 1024
"""No SQS message, and no SendMessageBatch request in total, may exceed 1 MiB."""

DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024
"""A queue's default MaximumMessageSize (256 KiB): the budget when the queue's own cannot be read."""

ENTRY_RETRY = Backoff(base_s=0.1, cap_s=2.0, max_attempts=5)
"""Entries that SQS failed on its side (SenderFault false) are sent again at most 4 more times."""

# Characters SQS accepts in a message body (anything else fails the whole batch).
_INVALID_BODY = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

Progress = Callable[[int, int, int], None]
"""Called after each batch with (messages sent, messages failed, total)."""


@dataclass
class _Tally:
    sent: int = 0
    batches: int = 0
    retried: int = 0
    max_delay_s: int = 0
    failed: list[FailedMessage] = field(default_factory=list)


def send_messages(
    client: Any,
    queue_url: str,
    bodies: Sequence[str],
    *,
    timers: Timers | None = None,
    group_id: str | None = None,
    max_message_bytes: int | None = None,
    clock: Clock = SYSTEM_CLOCK,
    rand: random.Random | None = None,
    on_progress: Progress | None = None,
    run: Run | str | None = None,
    book: RunBook | None = None,
) -> SendReport:
    """Send ``bodies`` to ``queue_url`` in batches of at most 10 entries and at most ``max_message_bytes``
    bytes each, through the boto3 SQS ``client``.

    ``timers``: a :class:`~producer.plan.Jitter` or :class:`~producer.plan.SpreadPlan` (whose ``jobs`` must
    equal ``len(bodies)``) choosing each message's DelaySeconds; none by default. Not allowed on FIFO
    queues, which refuse per-message timers.
    ``group_id``: the MessageGroupId of every message, required for a FIFO queue (``.fifo``); each
    message gets its own deduplication id, kept when a failed entry is sent again.
    ``max_message_bytes``: the queue's MaximumMessageSize; by default read from the queue
    (GetQueueAttributes), else 256 KiB.
    ``clock``, ``rand``: time, sleep and randomness (jitter, backoff), for tests.
    ``run``: send into this run (docs/runs.md): its total grows by ``len(bodies)`` before the first message
    goes out, and what SQS refused or a stopped send never sent is taken back after; each message carries
    the run in its ``sqs_loops_run`` attribute. ``book``: the runs' table (default: ``LOOPS_TABLE``).

    Checks every message before sending any (raising :class:`BadSend` or :class:`MessageTooLarge`).
    Entries that fail on SQS's side are retried with backoff; those refused for good are returned in
    ``failed``. Raises :class:`SendIncomplete` if a whole batch call fails for good.
    """
    rand = rand or random.Random()
    fifo = QueueRef.of_url(queue_url).fifo
    if max_message_bytes is not None and not 0 < max_message_bytes <= SQS_MAX_PAYLOAD_BYTES:
        raise BadSend(f"max_message_bytes: expected 1-{SQS_MAX_PAYLOAD_BYTES} (the SQS limit), got {max_message_bytes}")
    limit = max_message_bytes or _queue_max_message_bytes(client, queue_url)
    run_name = None if run is None else check_run_name(str(run))
    sender = _Sender(client, queue_url, bodies, timers, group_id if fifo else None, clock, rand, run_name)
    # The run's attribute counts toward each message's size, and so toward each batch's.
    _check(bodies, queue_url, timers=timers, fifo=fifo, group_id=group_id, limit=limit - sender.tag_bytes)
    runs = None if run_name is None or not bodies else run_book(book)
    if runs is not None and run_name is not None:
        # Before any message goes out: the run cannot look finished while these are on their way.
        grow(runs, run_name, len(bodies), sender.dedup_prefix, clock=clock)
    try:
        for batch in _batches(bodies, limit, extra_bytes=sender.tag_bytes):
            try:
                sender.send(batch)
            except Exception as exc:  # queue gone, access denied, throttled past the retries: say where it stopped
                cause = exc.cause if isinstance(exc, RetriesExhausted) else exc
                raise SendIncomplete(sender.report(), batch[0], cause) from exc
            if on_progress is not None:
                on_progress(sender.tally.sent, len(sender.tally.failed), len(bodies))
    except BaseException:
        if runs is not None and run_name is not None:
            _take_back_after_failure(runs, run_name, sender.dedup_prefix, len(bodies) - sender.tally.sent, clock)
        raise
    if runs is not None and run_name is not None:
        take_back(runs, run_name, sender.dedup_prefix, len(bodies) - sender.tally.sent, clock=clock)
    return sender.report()


def _take_back_after_failure(runs: RunBook, run: str, send_id: str, count: int, clock: Clock) -> None:
    """Take back what a stopped send did not send; the send's own error is the one raised."""
    try:
        take_back(runs, run, send_id, count, clock=clock)
    except Exception as exc:  # the run now shows more messages than were sent: say how many
        log("error", "run_take_back_failed", run=run, count=count, error=repr(exc))


def _check(
    bodies: Sequence[str], queue_url: str, *, timers: Timers | None, fifo: bool, group_id: str | None, limit: int
) -> None:
    if fifo and timers is not None:
        raise BadSend(
            f"{queue_url} is a FIFO queue: SQS refuses per-message timers (DelaySeconds) there; send without "
            "jitter or a plan (a FIFO queue paces itself: one message in flight per group), or use a standard queue"
        )
    if fifo and not group_id:
        raise BadSend(f"{queue_url} is a FIFO queue: give a group id (MessageGroupId) for the messages")
    if isinstance(timers, SpreadPlan) and timers.jobs != len(bodies):
        raise BadSend(f"the plan is for {timers.jobs} jobs, but there are {len(bodies)} messages: plan for that many")
    for index, body in enumerate(bodies):
        if not isinstance(body, str) or not body:
            raise BadSend(f"message {index}: expected a non-empty string, got {body!r:.60}")
        bad = _INVALID_BODY.search(body)
        if bad is not None:
            raise BadSend(
                f"message {index}: character U+{ord(bad.group()):04X} at position {bad.start()} is not allowed "
                "in an SQS message body"
            )
        size = _size(body)
        if size > limit:
            raise MessageTooLarge(index, size, limit)


def _size(body: str) -> int:
    return len(body.encode("utf-8"))


def _batches(bodies: Sequence[str], limit_bytes: int, *, extra_bytes: int = 0) -> list[list[int]]:
    """Indexes of ``bodies`` in order, grouped by at most 10 and at most ``limit_bytes`` in total, each
    message counted with ``extra_bytes`` more (its attributes)."""
    batches: list[list[int]] = []
    current: list[int] = []
    size = 0
    for index, body in enumerate(bodies):
        body_size = _size(body) + extra_bytes
        if current and (len(current) == SQS_MAX_BATCH or size + body_size > limit_bytes):
            batches.append(current)
            current, size = [], 0
        current.append(index)
        size += body_size
    if current:
        batches.append(current)
    return batches


@dataclass
class _Sender:
    """Sends the batches of one ``send_messages`` call and keeps its tally."""

    client: Any
    queue_url: str
    bodies: Sequence[str]
    timers: Timers | None
    fifo_group_id: str | None  # set for FIFO queues only
    clock: Clock
    rand: random.Random
    run: str | None = None
    tally: _Tally = field(default_factory=lambda: _Tally())

    def __post_init__(self) -> None:
        self.start = self.clock.monotonic()
        # One id per send: a FIFO entry sent again keeps its deduplication id, so SQS keeps one copy. It also
        # makes the messages' item ids within a run (64 random bits: no two sends of a run share one).
        self.dedup_prefix = f"{self.rand.getrandbits(64):016x}"

    def tag(self, index: int) -> RunTag | None:
        return None if self.run is None else RunTag(self.run, f"{self.dedup_prefix}.{index:x}")

    @property
    def tag_bytes(self) -> int:
        """Bytes the run attribute adds to each message (SQS counts name, type and value), at most."""
        tag = self.tag(len(self.bodies))
        if tag is None:
            return 0
        ((name, value),) = tag.attribute().items()
        return len(name) + len(value["DataType"]) + len(value["StringValue"].encode())

    def report(self) -> SendReport:
        return SendReport(
            queue_url=self.queue_url,
            total=len(self.bodies),
            sent=self.tally.sent,
            failed=tuple(sorted(self.tally.failed, key=lambda f: f.index)),
            batches=self.tally.batches,
            retried=self.tally.retried,
            elapsed_s=self.clock.monotonic() - self.start,
            max_delay_s=self.tally.max_delay_s,
        )

    def send(self, batch: list[int]) -> None:
        """Send one batch (indexes into ``bodies``); entries SQS failed on its side go again with backoff,
        those it refused (or that outlast the retries) are tallied as failed."""
        outcome = call_with_entry_retries(
            lambda entries: retry_transient(
                partial(self.client.send_message_batch, QueueUrl=self.queue_url, Entries=entries),
                what="send_message_batch",
                clock=self.clock,
                rand=self.rand,
                fields={"queue_url": self.queue_url},
            ),
            batch,
            self._entry,
            backoff=ENTRY_RETRY,
            clock=self.clock,
            rand=self.rand,
        )
        self.tally.batches += outcome.calls
        self.tally.sent += outcome.succeeded
        self.tally.retried += outcome.retried
        for failure in outcome.failed:
            self._failed(FailedMessage(failure.item, failure.code, failure.detail, failure.sender_fault))

    def _entry(self, entry_id: str, index: int) -> dict[str, Any]:
        entry: dict[str, Any] = {"Id": entry_id, "MessageBody": self.bodies[index]}
        if self.timers is not None:
            # Asked at each attempt: a plan's delay counts down with the time the send has taken.
            delay = self.timers.delay_s(index, self.clock.monotonic() - self.start, self.rand)
            entry["DelaySeconds"] = delay
            self.tally.max_delay_s = max(self.tally.max_delay_s, delay)
        tag = self.tag(index)
        if tag is not None:
            entry["MessageAttributes"] = tag.attribute()
        if self.fifo_group_id is not None:
            entry["MessageGroupId"] = self.fifo_group_id
            entry["MessageDeduplicationId"] = f"{self.dedup_prefix}-{index}"
        return entry

    def _failed(self, failed: FailedMessage) -> None:
        log(
            "warning",
            "send_entry_failed",
            queue_url=self.queue_url,
            index=failed.index,
            code=failed.code,
            detail=failed.detail,
            sender_fault=failed.sender_fault,
        )
        self.tally.failed.append(failed)


def _queue_max_message_bytes(client: Any, queue_url: str) -> int:
    """The queue's MaximumMessageSize, or 256 KiB (the default) when it cannot be read: a producer may
    lack sqs:GetQueueAttributes, and the smaller budget is always safe."""
    try:
        attributes = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["MaximumMessageSize"])
        return min(SQS_MAX_PAYLOAD_BYTES, int(attributes["Attributes"]["MaximumMessageSize"]))
    except Exception as exc:  # any failure: fall back to the safe default, and say so
        log(
            "warning",
            "max_message_size_unknown",
            queue_url=queue_url,
            code=error_code(exc) or type(exc).__name__,
            using_bytes=DEFAULT_MAX_MESSAGE_BYTES,
        )
        return DEFAULT_MAX_MESSAGE_BYTES
