"""Where the cool-down's memory lives: one row per queue in the token table, in a control partition of
its own (hash key ``#holds``, range key the queue key), like the overrides. Token queries never read that
partition and table scans skip it (its rows have no ``loop_id``).

A row is written only when a queue wants more than ``min_loops``, so a resting queue costs no write.
Writers (restart, scale_up, scale_down) race: a version number makes each write conditional, and a writer
that lost re-reads and merges, so no writer's newer time is lost."""

from __future__ import annotations

import json
from functools import cache

from pynamodb.attributes import UnicodeAttribute, VersionAttribute
from pynamodb.exceptions import PutError
from pynamodb.models import Model

from poller.aws.errors import is_condition_failure
from poller.config import QueueConfig
from poller.logs import log
from scaler.cooldown import held_loops, remember

HOLDS_PARTITION = "#holds"
WRITE_ATTEMPTS = 3
"""A write that lost a race re-reads and merges; three writers racing on one queue is already rare."""


class HoldRow(Model):
    class Meta:
        table_name = "sqs-loops-tokens"  # replaced per deployment by bind_hold_table

    queue_url = UnicodeAttribute(hash_key=True)  # always HOLDS_PARTITION
    token = UnicodeAttribute(range_key=True)  # the queue key
    seen = UnicodeAttribute()  # JSON {loops: epoch ms}: see scaler/cooldown.py
    version = VersionAttribute()


@cache
def bind_hold_table(table_name: str, *, region: str | None = None, host: str | None = None) -> type[HoldRow]:
    meta = type("Meta", (), {"table_name": table_name, "region": region, "host": host})
    return type(f"HoldRow[{table_name}]", (HoldRow,), {"Meta": meta, "__module__": __name__})


def _decode(row: HoldRow) -> dict[int, int]:
    try:
        return {int(k): int(v) for k, v in json.loads(row.seen).items()}
    except (ValueError, TypeError, AttributeError) as exc:
        # Only this code writes the row; an unreadable one holds nothing rather than stopping scaling.
        log("warning", "hold_row_unreadable", queue=row.token, error=repr(exc))
        return {}


class HoldStore:
    """Reads and writes the cool-down rows of one table."""

    def __init__(self, model: type[HoldRow]):
        self.model = model

    def all(self) -> dict[str, dict[int, int]]:
        """Queue key -> its ``seen`` map, for every queue with a row (one consistent query)."""
        return {row.token: _decode(row) for row in self.model.query(HOLDS_PARTITION, consistent_read=True)}

    def of(self, queue_key: str) -> dict[int, int]:
        row = self._get(queue_key)
        return {} if row is None else _decode(row)

    def held(self, queue: QueueConfig, seen: dict[int, int], *, now_ms: int) -> int:
        return held_loops(seen, now_ms=now_ms, cooldown_s=queue.scale_in_cooldown_s)

    def record(
        self,
        queue: QueueConfig,
        wanted: int,
        *,
        now_ms: int,
        seen: dict[int, int] | None = None,
        at_most: int | None = None,
    ) -> None:
        """Remember that the rule asked for ``wanted`` loops at ``now_ms`` (and forget counts above
        ``at_most``: :func:`scaler.cooldown.remember`). ``seen``: the map as read moments ago: when
        remembering changes nothing in it, nothing is read or written."""

        def merged(current: dict[int, int]) -> dict[int, int]:
            cooldown_s, floor = queue.scale_in_cooldown_s, queue.min_loops
            return remember(current, wanted, now_ms=now_ms, cooldown_s=cooldown_s, floor=floor, at_most=at_most)

        if seen is not None and merged(seen) == seen:
            return
        for _ in range(WRITE_ATTEMPTS):
            row = self._get(queue.key)
            current = {} if row is None else _decode(row)
            new = merged(current)
            if new == current:
                return
            if row is None:
                row = self.model(HOLDS_PARTITION, queue.key)
            row.seen = json.dumps({str(k): v for k, v in sorted(new.items())})
            try:
                row.save()  # conditional on the version read (or on the row being absent)
                return
            except PutError as exc:
                if not is_condition_failure(exc):
                    raise
        log("warning", "hold_write_lost", queue=queue.key, wanted=wanted)

    def _get(self, queue_key: str) -> HoldRow | None:
        try:
            return self.model.get(HOLDS_PARTITION, queue_key, consistent_read=True)
        except self.model.DoesNotExist:
            return None
