"""Runs for producers and handlers: start a run, send into it, read its status (docs/runs.md).

    import producer

    run = producer.start_run("crawl-2026-12-02")
    producer.send_messages(sqs, pages_url, pages, run=run)      # the run's total grows before the send

    def handle(event, context):                                  # a handler of the pages queue
        for record in event["Records"]:
            run = producer.run_of(record)                        # the record's run, or None
            producer.send_messages(sqs, parse_url, children(record), run=run)

The run's row lives in the token table (``LOOPS_TABLE``; the loop function has it set, so a handler needs
nothing); elsewhere pass ``book=RunBook.of(dynamodb_client, table_name)``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import partial
from typing import Any

from poller.aws.environment import LOOPS_TABLE, region
from poller.aws.retry import retry_transient
from poller.clock import Clock, epoch_ms
from poller.logs import log
from poller.runs import RunBook, RunError, RunStatus, check_run_name, tag_of_record


@dataclass(frozen=True)
class Run:
    """A run, by name (what ``run_of`` gives and ``send_messages(run=...)`` takes; a plain name works too)."""

    name: str

    def __post_init__(self) -> None:
        check_run_name(self.name)

    def __str__(self) -> str:
        return self.name


def run_book(book: RunBook | None = None) -> RunBook:
    """``book``, or the deployment's (``LOOPS_TABLE``, ``LOOPS_RUNS_TOPIC``, the function's region)."""
    if book is not None:
        return book
    found = RunBook.from_environment(region())
    if found is None:
        raise RunError(f"runs live in the token table: set {LOOPS_TABLE} or pass book=RunBook.of(client, table)")
    return found


def start_run(name: str, *, book: RunBook | None = None, exist_ok: bool = False) -> Run:
    """Start a run named ``name`` (its total is 0 until something is sent into it). With ``exist_ok`` an
    unfinished run of that name is sent into instead of refused (:class:`~poller.runs.RunExists`)."""
    runs = run_book(book)
    runs.table.create(check_run_name(name), now_ms=epoch_ms(runs.clock), exist_ok=exist_ok)
    return Run(name)


def run_of(record: dict[str, Any]) -> Run | None:
    """The run a record (as a handler receives it) belongs to, or None."""
    tag = tag_of_record(record)
    return None if tag is None else Run(tag.run)


def run_status(name: str | Run, *, book: RunBook | None = None) -> RunStatus | None:
    """A run's status (``.as_dict()``: run, total, done, failed, state, started_at, finished_at), or None."""
    return run_book(book).table.get(str(name))


def list_runs(*, book: RunBook | None = None) -> list[RunStatus]:
    """Every run of the deployment, newest first."""
    return sorted(run_book(book).table.runs(), key=lambda s: s.started_at or 0, reverse=True)


def grow(book: RunBook, run: str, count: int, send_id: str, *, clock: Clock) -> None:
    """Add ``count`` to the run's total before sending that many messages (a run never looks finished while
    work is still coming). Transient errors are retried: the write is idempotent per ``send_id``."""
    retry_transient(
        partial(book.table.grow, run, count, send_id=send_id), what="run_grow", clock=clock, rand=random.Random()
    )


def take_back(book: RunBook, run: str, send_id: str, unsent: int, *, clock: Clock) -> None:
    """Settle a send: take back from the total what was not sent; if that completes the run, claim and
    publish its notice (no loop will write again for it)."""
    status = retry_transient(
        partial(book.table.settle, run, send_id, unsent=unsent), what="run_settle", clock=clock, rand=random.Random()
    )
    if status is None:
        return  # settled by an earlier try of this request
    if unsent:
        log("info", "run_taken_back", run=run, count=unsent, total=status.total)
    book.notifier.check(status, fields={"by": "producer"})
