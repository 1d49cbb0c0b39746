"""Moving a queue's token rows to a wanted count, and reviving rows whose loop died.

Rows are *slots* ``slot-0001`` ... ``slot-<max_loops>``. A queue that wants n loops has slots 1..n; rows in
higher slots are retired. Two scale calls racing to the same count create the same slots, and a
conditional create lets only one of them write each, so no race can make more rows than the count
asked for, nor ever more than ``max_loops``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from poller.clock import Clock, epoch_ms
from poller.exceptions import TokenExists, TokenLost
from poller.lease.recursion import Invoker
from poller.lease.step import LoopStep
from poller.lease.tokens import TokenState, TokenStore
from poller.logs import log

_SLOT = re.compile(r"^slot-([0-9]{4,})$")

ERROR_REVIVE_AFTER_S = 300
"""A loop that stopped for good (queue gone, handler not importable) is revived at most every 5 minutes,
so a fix is picked up without a revive-and-fail cycle every minute."""


def slot_token(number: int) -> str:
    return f"slot-{number:04d}"


def slot_number(token: str) -> int | None:
    match = _SLOT.match(token)
    return int(match[1]) if match else None


@dataclass
class Changes:
    """What one reconcile did, by token."""

    started: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    unretired: list[str] = field(default_factory=list)
    revived: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    live: int | None = None  # rows not retiring once a scale call is done (None: not counted)

    def any(self) -> bool:
        return any(self.as_dict().values())

    def extend(self, other: Changes) -> Changes:
        for name, tokens in other.as_dict().items():
            getattr(self, name).extend(tokens)
        return self

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "started": self.started,
            "retired": self.retired,
            "unretired": self.unretired,
            "revived": self.revived,
            "released": self.released,
        }


class Reconciler:
    """Writes token rows and starts their loops by invoking ``poller_function`` asynchronously."""

    def __init__(
        self,
        tokens: TokenStore,
        invoker: Invoker,
        poller_function: str,
        clock: Clock,
        new_loop_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ):
        self.tokens = tokens
        self.invoker = invoker
        self.poller_function = poller_function
        self.clock = clock
        self.new_loop_id = new_loop_id

    def scale(
        self,
        queue_url: str,
        wanted: int,
        *,
        grow: bool = True,
        shrink: bool = True,
        rows: list[TokenState] | None = None,
    ) -> Changes:
        """Give ``queue_url`` slots 1..``wanted`` (when ``grow``) and retire every other row (when
        ``shrink``). Idempotent: a second call with the same count changes nothing. ``rows``: the queue's
        rows as just read (restart reads them once for revive and scale); by default they are read here."""
        changes = Changes()
        rows = list(self.tokens.tokens_of(queue_url)) if rows is None else rows
        by_slot = {slot_number(row.token): row for row in rows}
        if grow:
            for number in range(1, wanted + 1):
                row = by_slot.get(number)
                if row is None:
                    self._start_new(queue_url, slot_token(number), changes)
                elif row.retiring:
                    self._unretire(row, changes)
        if shrink:
            for row in rows:
                slot = slot_number(row.token)
                if not row.retiring and (slot is None or slot > wanted):
                    self._retire(row, changes)
        kept = sum(not row.retiring for row in rows)
        changes.live = kept + len(changes.started) + len(changes.unretired) - len(changes.retired)
        return changes

    def revive(
        self, queue_url: str, *, stale_after_s: int, wanted: int | None = None, rows: list[TokenState] | None = None
    ) -> Changes:
        """Take over every row whose loop looks dead, and start a new loop on it. A row is dead when its
        last heartbeat (or, before the first one, its creation) is older than ``stale_after_s``. A dead row
        that was retiring, or that lies above the ``wanted`` count (when known), is released instead."""
        changes = Changes()
        now = epoch_ms(self.clock)
        for row in self.tokens.tokens_of(queue_url) if rows is None else rows:
            seen_at = row.last_used if row.last_used is not None else row.created_at or 0
            if now - seen_at <= stale_after_s * 1000:
                continue
            slot = slot_number(row.token)
            unwanted = wanted is not None and (slot is None or slot > wanted)
            if row.retiring or unwanted:
                # As it was read: a loop that claimed or heartbeat since is alive (a takeover's condition too).
                if self.tokens.release(row.queue_url, row.token, unchanged=row):
                    changes.released.append(row.token)
                continue
            if row.last_error_at is not None and now - row.last_error_at < ERROR_REVIVE_AFTER_S * 1000:
                continue
            self._take_over(row, now, changes)
        return changes

    def release_all(self, queue_url: str) -> Changes:
        """Delete every row of a queue that is no longer configured; their loops stop at their next write."""
        changes = Changes()
        for row in self.tokens.tokens_of(queue_url):
            if self.tokens.release(row.queue_url, row.token):
                changes.released.append(row.token)
        return changes

    def _start_new(self, queue_url: str, token: str, changes: Changes) -> None:
        loop_id = self.new_loop_id()
        try:
            self.tokens.create(queue_url, token, loop_id=loop_id, now_ms=epoch_ms(self.clock))
        except TokenExists:
            return  # a racing scale call made this slot: its loop is that call's to start
        self._start(LoopStep(queue_url, token, loop_id, 0))
        changes.started.append(token)

    def _take_over(self, row: TokenState, now: int, changes: Changes) -> None:
        loop_id = self.new_loop_id()
        try:
            taken = self.tokens.takeover(row, new_loop_id=loop_id, now_ms=now)
        except TokenLost:
            return  # it heartbeat after all, or was deleted: nothing to revive
        self._start(LoopStep(row.queue_url, row.token, loop_id, taken.generation))
        changes.revived.append(row.token)
        log(
            "warning",
            "loop_revived",
            queue_url=row.queue_url,
            token=row.token,
            old_loop_id=row.loop_id,
            loop_id=loop_id,
            last_used=row.last_used,
        )

    def _retire(self, row: TokenState, changes: Changes) -> None:
        try:
            self.tokens.retire(row.queue_url, row.token, now_ms=epoch_ms(self.clock))
        except TokenLost:
            return
        changes.retired.append(row.token)

    def _unretire(self, row: TokenState, changes: Changes) -> None:
        try:
            self.tokens.unretire(row)
        except TokenLost:
            # Its loop released it meanwhile: make the slot anew.
            self._start_new(row.queue_url, row.token, changes)
            return
        changes.unretired.append(row.token)

    def _start(self, step: LoopStep) -> None:
        # A failed start raises (the platform retries the scale call); the row exists, and if no start
        # ever gets through, restart revives it once its grace has passed.
        self.invoker.invoke_async(self.poller_function, step.payload())
