"""The one notice of a finished run (docs/runs.md#the-notice).

    count write sees done + failed >= total ──► claim (SET finished_at, cond: not finished, total unchanged)
                                                  │ won: exactly one writer gets here
                                                  ▼
                                         publish to <LOOPS_PREFIX>-runs ──► SET notified_at
                                                  │ failed
                                                  ▼
                                         logged; restart publishes claims left unpublished

Whoever sees the run complete tries the claim (a loop's counting write, a producer taking back what SQS
refused); the condition lets one win. A publish that fails after the claim is retried by restart, which
looks for finished runs without ``notified_at`` older than :data:`REPUBLISH_AFTER_MS`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from poller.clock import Clock, epoch_ms
from poller.logs import log
from poller.runs.table import RunStatus, RunTable

RUNS_TOPIC_ARN = "LOOPS_RUNS_TOPIC"
"""Environment variable: the ARN of the ``<LOOPS_PREFIX>-runs`` topic (the stack and the sandbox set it)."""

REPUBLISH_AFTER_MS = 120_000
"""A claimed notice not marked published after 2 minutes is taken as failed: the claimer publishes within
a second or two, or it crashed or the publish failed. Shorter would risk a second notice while the first
claimer's publish is still under way."""

Publish = Callable[[str], None]
"""Publish one notice (a JSON string) to the runs topic."""


def notice(status: RunStatus) -> dict[str, Any]:
    """The notice's JSON: run, total, done, failed, started_at, finished_at (ISO 8601 UTC), duration_s."""

    def iso(ms: int | None) -> str | None:
        return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")

    duration = None
    if status.started_at is not None and status.finished_at is not None:
        duration = round((status.finished_at - status.started_at) / 1000, 3)
    return {
        "run": status.run,
        "total": status.total,
        "done": status.done,
        "failed": status.failed,
        "started_at": iso(status.started_at),
        "finished_at": iso(status.finished_at),
        "duration_s": duration,
    }


def sns_publisher(client: Any, topic_arn: str) -> Publish:
    """Publish through a boto3 SNS client to ``topic_arn``."""

    def publish(message: str) -> None:
        client.publish(TopicArn=topic_arn, Message=message, Subject="sqs-loops run finished")

    return publish


class Notifier:
    """Claims and publishes a run's notice when a write shows the run complete."""

    def __init__(self, table: RunTable, publish: Publish | None, clock: Clock):
        self.table = table
        self.publish = publish
        self.clock = clock

    def check(self, status: RunStatus, *, fields: dict[str, object] | None = None) -> bool:
        """Claim and publish if ``status`` (the run after a write) is complete and unclaimed. True if this
        call claimed the notice."""
        fields = fields or {}
        if not status.complete or status.finished_at is not None:
            return False
        if status.done + status.failed > status.total:
            log(
                "warning",
                "run_overcounted",
                run=status.run,
                total=status.total,
                done=status.done,
                failed=status.failed,
                **fields,
            )
        finished = self.table.claim_finish(status, now_ms=epoch_ms(self.clock))
        if finished is None:
            return False  # another writer claimed it, or the total grew since
        log("info", "run_finished", **notice(finished), **fields)
        self.send(finished, fields=fields)
        return True

    def send(self, finished: RunStatus, *, fields: dict[str, object] | None = None) -> bool:
        """Publish the notice of a claimed run and mark it published. False (logged) if the publish failed:
        restart tries again."""
        fields = fields or {}
        if self.publish is None:
            log("error", "run_notice_failed", run=finished.run, error=f"{RUNS_TOPIC_ARN} is not set", **fields)
            return False
        try:
            self.publish(json.dumps(notice(finished), separators=(",", ":")))
        except Exception as exc:  # the claim stands; restart publishes it later
            log("error", "run_notice_failed", run=finished.run, error=repr(exc), **fields)
            return False
        try:
            self.table.mark_notified(finished.run, now_ms=epoch_ms(self.clock))
        except Exception as exc:  # published, but restart may publish once more: say so
            log("warning", "run_notice_unmarked", run=finished.run, error=repr(exc), **fields)
        log("info", "run_notice_published", run=finished.run, **fields)
        return True

    def republish_unannounced(self) -> list[str]:
        """Publish the notices of runs claimed finished but never marked published (the claimer's publish
        failed or it crashed), if claimed more than :data:`REPUBLISH_AFTER_MS` ago. Returns their runs."""
        now = epoch_ms(self.clock)
        sent = []
        for status in self.table.runs(unannounced=True):
            if status.finished_at is None or status.notified_at is not None:
                continue
            if now - status.finished_at < REPUBLISH_AFTER_MS:
                continue
            if self.send(status, fields={"by": "restart"}):
                sent.append(status.run)
        return sent
