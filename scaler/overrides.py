"""Operator overrides: pin a queue's loop count, pause it (0 loops), resume.

Stored in the token table, in a control partition of their own (hash key ``#overrides``, range key the
queue key), so that the operator's tool needs only the table the stack already has. Token queries never
read that partition, and table scans skip it (its rows have no ``loop_id``)."""

from __future__ import annotations

from functools import cache

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from poller.aws.clients import token_table_settings
from poller.config import QueueConfig
from scaler.exceptions import OverrideError

OVERRIDES_PARTITION = "#overrides"


class OverrideRow(Model):
    class Meta:
        table_name = "sqs-loops-tokens"  # replaced per deployment by bind_override_table

    queue_url = UnicodeAttribute(hash_key=True)  # always OVERRIDES_PARTITION
    token = UnicodeAttribute(range_key=True)  # the queue key
    loops = NumberAttribute()
    set_at = NumberAttribute()  # epoch ms
    note = UnicodeAttribute(null=True)


@cache
def bind_override_table(table_name: str, *, region: str | None = None, host: str | None = None) -> type[OverrideRow]:
    meta = type(
        "Meta", (), {"table_name": table_name, "region": region, "host": host, **token_table_settings(in_loop=False)}
    )
    return type(f"OverrideRow[{table_name}]", (OverrideRow,), {"Meta": meta, "__module__": __name__})


class OverrideStore:
    def __init__(self, model: type[OverrideRow]):
        self.model = model

    def pin(self, queue: QueueConfig, loops: int, *, now_ms: int, note: str | None = None) -> None:
        """Hold ``queue`` at ``loops`` (0 pauses it) whatever its alarms say, until :meth:`clear`."""
        if isinstance(loops, bool) or not isinstance(loops, int) or not 0 <= loops <= queue.max_loops:
            raise OverrideError(
                f"queue {queue.key!r}: a pinned loop count is from 0 to max_loops ({queue.max_loops}), got {loops!r}"
            )
        self.model(OVERRIDES_PARTITION, queue.key, loops=loops, set_at=now_ms, note=note).save()

    def clear(self, queue_key: str) -> None:
        """Resume: the alarms decide again."""
        self.model(OVERRIDES_PARTITION, queue_key).delete()

    def pinned(self) -> dict[str, int]:
        """Queue key -> pinned loop count, for every queue with an override (one consistent query)."""
        return {row.token: int(row.loops) for row in self.model.query(OVERRIDES_PARTITION, consistent_read=True)}

    def pinned_for(self, queue_key: str) -> int | None:
        try:
            return int(self.model.get(OVERRIDES_PARTITION, queue_key, consistent_read=True).loops)
        except self.model.DoesNotExist:
            return None
