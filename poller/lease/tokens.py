"""The token table and its conditional operations.

One row per loop that should be running: hash key ``queue_url``, range key ``token``. A loop may work only
while its writes to its row succeed; every write is conditional, so two loops can never both own a row.

Timeline of one row (``L1``, ``L2`` are loop ids; ``g`` the generation; ``t`` epoch ms)::

    create           claim(g=0)        heartbeat*        claim(g=1)         takeover            release
    scale-up/        loop L1, step 0   L1 while working  L1, step 1 (its    restart, when t     loop itself on
    restart          ----------------  ----------------  own recursion)     is stale            retiring, or
    --------------   cond: L1, g=0     cond: L1, g=1     cond: L1, g=1       ----------------    restart
    loop_id=L1       set g=1, t=now    set t=now         set g=2, t=now      cond: L1, t=seen    -------------
    generation=0                                                             set loop_id=L2,     delete row
    created_at=now                                                           g+=1, t=now
                             duplicate delivery of step 0: cond g=0 fails -> exits quietly ("superseded")
                             L1 after takeover: cond L1 fails -> stops after the batch in hand ("taken_over")
                             after release: cond "row exists" fails -> stops ("deleted")

    retire (scale-down): sets retiring_since; the owner sees it in the answer to its next claim or
    heartbeat, finishes the batch in hand, deletes the row (release, cond: its loop_id) and stops. Until
    then the row still counts toward max_loops, so a scale-up never overshoots while a loop drains.
    unretire (scale-up wanting the row back): removes retiring_since while the same loop owns it.

Every operation is idempotent under a retried request (a botocore retry after a lost answer): claim
also matches its own ``claim_id`` (or the one its handed-over event carries), takeover and create also
match the new ``loop_id``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DeleteError, PutError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.models import Model

from poller.aws.clients import token_table_settings
from poller.aws.errors import is_condition_failure
from poller.exceptions import TokenExists, TokenLost
from poller.lease.pace import PaceFigures
from poller.logs import log


class TokenRow(Model):
    """The contract's attributes (queue_url, token, loop_id, generation, last_used) and our own."""

    class Meta:
        table_name = "sqs-loops-tokens"  # replaced per deployment by bind_token_table

    queue_url = UnicodeAttribute(hash_key=True)
    token = UnicodeAttribute(range_key=True)
    loop_id = UnicodeAttribute()
    generation = NumberAttribute()
    last_used = NumberAttribute(null=True)  # epoch ms of the last claim or heartbeat; absent until the first
    created_at = NumberAttribute(null=True)  # epoch ms
    claim_id = UnicodeAttribute(null=True)  # the invocation that made the last claim (for retried requests)
    retiring_since = NumberAttribute(null=True)  # epoch ms; set by scale-down
    last_error = UnicodeAttribute(null=True)  # why the last loop on this row stopped for good
    last_error_at = NumberAttribute(null=True)  # epoch ms
    # The loop's own pace, written with its heartbeat (poller/lease/pace.py; the limit cap reads it):
    pace_rps = NumberAttribute(null=True)  # records a second it hands over when not waiting for its share
    pace_wait = NumberAttribute(null=True)  # fraction of its time spent waiting for the share, 0..1
    pace_at = NumberAttribute(null=True)  # epoch ms the two were written


@cache
def bind_token_table(
    table_name: str, *, region: str | None = None, host: str | None = None, in_loop: bool = False
) -> type[TokenRow]:
    """The token model bound to one table (``LOOPS_TABLE``), with timeouts sized to a loop step (``in_loop``)
    or to the control plane and the CLI (:func:`~poller.aws.clients.token_table_settings`). ``host``
    overrides the endpoint; by default botocore's (``AWS_ENDPOINT_URL`` included) is used."""
    settings = {"table_name": table_name, "region": region, "host": host, **token_table_settings(in_loop=in_loop)}
    meta = type("Meta", (), settings)
    return type(f"TokenRow[{table_name}]", (TokenRow,), {"Meta": meta, "__module__": __name__})


@dataclass(frozen=True)
class TokenState:
    """A row as read or as left by a write. Times are epoch milliseconds."""

    queue_url: str
    token: str
    loop_id: str
    generation: int
    last_used: int | None
    created_at: int | None
    retiring_since: int | None
    last_error: str | None
    last_error_at: int | None
    pace: PaceFigures | None = None
    pace_at: int | None = None

    @property
    def retiring(self) -> bool:
        return self.retiring_since is not None

    @classmethod
    def of(cls, row: TokenRow) -> TokenState:
        return cls(
            queue_url=row.queue_url,
            token=row.token,
            loop_id=row.loop_id,
            generation=int(row.generation),
            last_used=_opt_int(row.last_used),
            created_at=_opt_int(row.created_at),
            retiring_since=_opt_int(row.retiring_since),
            last_error=row.last_error,
            last_error_at=_opt_int(row.last_error_at),
            pace=None if row.pace_rps is None else PaceFigures(rps=float(row.pace_rps), wait=float(row.pace_wait or 0)),
            pace_at=_opt_int(row.pace_at),
        )


# Named pieces of the conditions (cf. the timeline above).
def _row_exists() -> Condition:
    return TokenRow.token.exists()


def _owned_by(loop_id: str) -> Condition:
    return TokenRow.loop_id == loop_id


def _at_generation(generation: int) -> Condition:
    return TokenRow.generation == generation


def _claimed_by(claim_id: str) -> Condition:
    return TokenRow.claim_id == claim_id


def _heartbeat_is(last_used: int | None) -> Condition:
    return TokenRow.last_used.does_not_exist() if last_used is None else TokenRow.last_used == last_used


class TokenStore:
    """Claim, heartbeat, takeover, retire and release on one token table.

    Condition failures raise :class:`TokenLost` (or :class:`TokenExists`); every other error, transient
    or not, propagates for the caller to retry or report."""

    def __init__(self, model: type[TokenRow]):
        self.model = model

    def create(self, queue_url: str, token: str, *, loop_id: str, now_ms: int) -> TokenState:
        """A new row at generation 0 with no heartbeat yet; start its loop with generation 0."""
        row = self.model(queue_url, token, loop_id=loop_id, generation=0, created_at=now_ms)
        try:
            row.save(condition=TokenRow.token.does_not_exist() | _owned_by(loop_id))
        except PutError as exc:
            if is_condition_failure(exc):
                raise TokenExists(f"token {token!r} of {queue_url} already exists") from exc
            raise
        return TokenState.of(row)

    def claim(
        self,
        queue_url: str,
        token: str,
        *,
        loop_id: str,
        generation: int,
        claim_id: str,
        now_ms: int,
        inherited_claim_ids: Sequence[str] = (),
    ) -> TokenState:
        """Step ``generation`` of loop ``loop_id`` takes the row: generation becomes ``generation + 1`` and
        ``claim_id`` (fresh per invocation) is recorded.

        A request that already landed may be sent again: by botocore after a lost answer (the row then
        holds ``generation + 1`` and this ``claim_id``), or as the handed-over step of an invocation whose
        claim landed but whose answers were all lost (the row holds one of ``inherited_claim_ids``, which
        the event carries: every hand-over of this step, since any of them may be the one that landed).
        Both count as this claim; the claim id then moves on, so a duplicate delivery of the handed-over
        step still loses."""
        row = self.model(queue_url, token)
        ours = _claimed_by(claim_id)
        if inherited_claim_ids:
            ours = TokenRow.claim_id.is_in(claim_id, *inherited_claim_ids)
        first_try = _owned_by(loop_id) & _at_generation(generation)
        retried = _owned_by(loop_id) & _at_generation(generation + 1) & ours
        try:
            row.update(
                actions=[
                    self.model.generation.set(generation + 1),
                    self.model.last_used.set(now_ms),
                    self.model.claim_id.set(claim_id),
                ],
                condition=_row_exists() & (first_try | retried),
            )
        except UpdateError as exc:
            if is_condition_failure(exc):
                raise self._lost(queue_url, token, loop_id, exc) from exc
            raise
        return TokenState.of(row)

    def heartbeat(
        self, queue_url: str, token: str, *, loop_id: str, generation: int, now_ms: int, pace: PaceFigures | None = None
    ) -> TokenState:
        """Refresh ``last_used`` for the owner of claimed ``generation``, and write its ``pace`` when it has
        figures (the same write: no extra call). The answer tells if it is retiring."""
        row = self.model(queue_url, token)
        actions: list[Any] = [self.model.last_used.set(now_ms)]
        if pace is not None:
            actions += [
                self.model.pace_rps.set(pace.rps),
                self.model.pace_wait.set(pace.wait),
                self.model.pace_at.set(now_ms),
            ]
        try:
            row.update(
                actions=actions,
                condition=_row_exists() & _owned_by(loop_id) & _at_generation(generation),
            )
        except UpdateError as exc:
            if is_condition_failure(exc):
                raise self._lost(queue_url, token, loop_id, exc) from exc
            raise
        return TokenState.of(row)

    def takeover(self, seen: TokenState, *, new_loop_id: str, now_ms: int) -> TokenState:
        """Give a row that looked dead (as ``seen``) to a new loop; start it with the returned generation.
        Fails with :class:`TokenLost` if the old loop heartbeat since, or the row was deleted."""
        row = self.model(seen.queue_url, seen.token)
        unchanged = _owned_by(seen.loop_id) & _heartbeat_is(seen.last_used)
        try:
            row.update(
                actions=[
                    self.model.loop_id.set(new_loop_id),
                    self.model.generation.set(seen.generation + 1),
                    self.model.last_used.set(now_ms),
                    self.model.claim_id.remove(),
                    self.model.last_error.remove(),
                    self.model.last_error_at.remove(),
                    self.model.pace_rps.remove(),  # the dead loop's pace is not the new one's
                    self.model.pace_wait.remove(),
                    self.model.pace_at.remove(),
                ],
                condition=_row_exists() & (unchanged | _owned_by(new_loop_id)),
            )
        except UpdateError as exc:
            if is_condition_failure(exc):
                raise self._lost(seen.queue_url, seen.token, seen.loop_id, exc) from exc
            raise
        return TokenState.of(row)

    def retire(self, queue_url: str, token: str, *, now_ms: int) -> TokenState:
        """Ask the row's loop to stop after its batch in hand and delete the row itself."""
        row = self.model(queue_url, token)
        try:
            row.update(
                actions=[self.model.retiring_since.set(self.model.retiring_since | now_ms)],
                condition=_row_exists(),
            )
        except UpdateError as exc:
            if is_condition_failure(exc):
                raise TokenLost("deleted", queue_url=queue_url, token=token, cause=exc) from exc
            raise
        return TokenState.of(row)

    def unretire(self, seen: TokenState) -> TokenState:
        """Take back a retire request (scale-up wants the row again) while the same loop owns it. The loop
        may already have seen the request and release the row anyway; restart then makes a new one."""
        row = self.model(seen.queue_url, seen.token)
        try:
            row.update(
                actions=[self.model.retiring_since.remove()],
                condition=_row_exists() & _owned_by(seen.loop_id),
            )
        except UpdateError as exc:
            if is_condition_failure(exc):
                raise self._lost(seen.queue_url, seen.token, seen.loop_id, exc) from exc
            raise
        return TokenState.of(row)

    def release(
        self,
        queue_url: str,
        token: str,
        *,
        loop_id: str | None = None,
        if_retiring: bool = False,
        unchanged: TokenState | None = None,
    ) -> bool:
        """Delete the row (only if ``loop_id`` still owns it, when given; only while it is retiring, when
        ``if_retiring``: a scale-up may have taken the request back; only if its owner and last heartbeat
        are still those of ``unchanged``, when given: restart releases a row that looked dead as it read it,
        never one whose loop claimed or heartbeat since, as a takeover). False if the condition failed."""
        condition = _row_exists()
        if loop_id is not None:
            condition &= _owned_by(loop_id)
        if unchanged is not None:
            condition &= _owned_by(unchanged.loop_id) & _heartbeat_is(unchanged.last_used)
        if if_retiring:
            condition &= TokenRow.retiring_since.exists()
        try:
            self.model(queue_url, token).delete(condition=condition)
        except DeleteError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def record_error(self, queue_url: str, token: str, *, loop_id: str, error: str, now_ms: int) -> None:
        """Note on the row why its loop stopped for good (for status and for restart's back-off)."""
        row = self.model(queue_url, token)
        try:
            row.update(
                actions=[self.model.last_error.set(error[:1000]), self.model.last_error_at.set(now_ms)],
                condition=_row_exists() & _owned_by(loop_id),
            )
        except UpdateError as exc:
            if not is_condition_failure(exc):
                raise

    def get(self, queue_url: str, token: str) -> TokenState | None:
        try:
            return TokenState.of(self.model.get(queue_url, token, consistent_read=True))
        except self.model.DoesNotExist:
            return None

    def tokens_of(self, queue_url: str, *, page_size: int | None = None) -> Iterator[TokenState]:
        """Every row of a queue, read consistently, following pagination (``page_size`` rows a page)."""
        for row in self.model.query(queue_url, consistent_read=True, page_size=page_size):
            yield TokenState.of(row)

    def count(self, queue_url: str) -> int:
        """How many rows (live or retiring loops) the queue has: one consistent Query with Select=COUNT, the
        rows not returned (the rate limit divides by it: docs/downstream.md)."""
        return int(self.model.count(queue_url, consistent_read=True))

    def queue_urls(self) -> set[str]:
        """Every queue URL that has token rows: a consistent scan of the whole table, following pages (the
        table holds at most the sum of max_loops rows, plus control rows without a loop_id)."""
        rows = self.model.scan(
            filter_condition=TokenRow.loop_id.exists(), consistent_read=True, attributes_to_get=["queue_url"]
        )
        return {row.queue_url for row in rows}

    def _lost(self, queue_url: str, token: str, loop_id: str, cause: BaseException) -> TokenLost:
        # Only reached on the rare way out of a loop: one consistent read tells the log why.
        try:
            now = self.get(queue_url, token)
        except Exception as exc:  # the write's answer already says "lost"; the read only names why
            log("warning", "token_read_failed", queue_url=queue_url, token=token, error=repr(exc))
            reason = "unknown"
        else:
            reason = "deleted" if now is None else "taken_over" if now.loop_id != loop_id else "superseded"
        return TokenLost(reason, queue_url=queue_url, token=token, cause=cause)


def _opt_int(value: float | None) -> int | None:
    return None if value is None else int(value)
