"""A loop's hold on its token between claim and recursion: when ownership was last confirmed, and
whether it was lost or the row asked to retire.

Restart takes a row over only when its heartbeat is older than ``stale_after_s``. A loop heartbeats when
``heartbeat_s`` has passed since its last confirmed write, before every receive and before every handler
call (and from the keeper while a handler runs), so a loop that can still work is never stale, and a loop
whose row was taken over learns it before it starts another batch."""

from __future__ import annotations

import random
import threading

from poller.aws.clients import TOKEN_CALL_WORST_S
from poller.aws.retry import DEFAULT_BACKOFF, Backoff, retry_transient
from poller.clock import Clock, Deadline, epoch_ms
from poller.exceptions import RetriesExhausted, TokenLost
from poller.lease.pace import Pace
from poller.lease.step import LoopStep
from poller.lease.tokens import TokenState, TokenStore
from poller.logs import log

KEEPER_BACKOFF = Backoff(base_s=0.1, cap_s=1.0, max_attempts=3)
"""From the keeper thread a failed heartbeat is tried a few times only; its next tick tries again."""


class Lease:
    def __init__(
        self,
        *,
        store: TokenStore,
        step: LoopStep,
        claimed: TokenState,
        confirmed_at: float,
        heartbeat_s: float,
        clock: Clock,
        rand: random.Random,
        log_fields: dict[str, object],
        report_early: bool = True,
    ):
        self.store = store
        self.step = step
        self.generation = claimed.generation
        self.confirmed_at = confirmed_at  # monotonic time at which the last successful write was sent
        self.heartbeat_s = heartbeat_s
        self.clock = clock
        self.rand = rand
        self.log_fields = log_fields
        self.lost: TokenLost | None = None
        self.retiring = claimed.retiring
        self.heartbeats = 0
        self.pace = Pace(confirmed_at)  # the loop's batches add to it; every heartbeat writes its figures
        # Whether the row carries figures of this loop that are recent (the last step's, within a heartbeat):
        # if not, the first figures go out as soon as there are some, not a heartbeat_s later, so that the
        # control plane can size a rate-limited backlog within seconds (docs/scaling.md#limit-cap).
        # ``report_early`` false (a queue without a rate limit, which the cap never sizes): no early write.
        recent = claimed.pace_at is not None and epoch_ms(clock) - claimed.pace_at < heartbeat_s * 1000
        self.reported = not report_early or recent
        self._lock = threading.Lock()

    @property
    def ended(self) -> bool:
        """The loop must stop after the batch in hand."""
        return self.lost is not None or self.retiring

    def due(self) -> bool:
        return self.clock.monotonic() - self.confirmed_at >= self.heartbeat_s

    def heartbeat_if_due(
        self, *, deadline: Deadline | None, reserve_s: float = 0.0, backoff: Backoff = DEFAULT_BACKOFF
    ) -> None:
        """Heartbeat if due. Sets :attr:`lost` or :attr:`retiring` as the row answers; raises
        :class:`RetriesExhausted` if the heartbeat kept failing (ownership is then unknown)."""
        with self._lock:  # held for the state only, never across a call: a slow DynamoDB must not hold up
            if self.lost is not None:  # (a retiring loop still heartbeats: it may drain its share first)
                return
            if not self.due():  # the other thread (the keeper's heartbeat, or the loop's) may be at it
                if self.reported or self.pace.figures() is None:
                    return
                self.reported = True  # the first figures, early: one thread sends them
        sent_at = self.clock.monotonic()
        figures = self.pace.figures()
        try:
            state = retry_transient(
                lambda: self.store.heartbeat(
                    self.step.queue_url,
                    self.step.token,
                    loop_id=self.step.loop_id,
                    generation=self.generation,
                    now_ms=epoch_ms(self.clock),
                    pace=figures,
                ),
                what="heartbeat",
                clock=self.clock,
                rand=self.rand,
                deadline=deadline,
                reserve_s=reserve_s,
                attempt_s=TOKEN_CALL_WORST_S,
                fields=self.log_fields,
                backoff=backoff,
            )
        except TokenLost as lost:
            with self._lock:
                self.lost = lost
            return
        with self._lock:
            self.heartbeats += 1
            self.confirmed_at = max(self.confirmed_at, sent_at)
            self.reported = figures is not None  # none written: the row's figures go stale
            self.retiring = state.retiring

    def heartbeat_from_keeper(self) -> None:
        """The keeper's variant: a failure is logged, never raised into the thread."""
        try:
            self.heartbeat_if_due(deadline=None, backoff=KEEPER_BACKOFF)
        except RetriesExhausted as exc:
            log("warning", "heartbeat_deferred", error=str(exc), **self.log_fields)
