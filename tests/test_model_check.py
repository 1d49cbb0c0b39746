"""A model check of the token protocol (docs/loop.md, docs/reliability.md): hypothesis interleaves scale
calls, restart, deliveries (duplicated, late, dropped, with the claim's answer lost), heartbeats, batches,
recursion, crashes, retried requests and rows deleted by hand, against in-process moto and the real
TokenStore, Lease and Reconciler on one fake clock. After every step it checks that at most one
invocation per token could start a batch, and every batch is checked, as it starts, to run under a row
its loop still owns."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import FakeClock, RecordingInvoker
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from poller.exceptions import TokenLost
from poller.lease.lease import Lease
from poller.lease.step import LoopStep
from poller.lease.tokens import TokenState, TokenStore
from scaler.reconcile import Reconciler, slot_token

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/model-check"
MAX_LOOPS = 2
HEARTBEAT_S = 2.0
STALE_AFTER_S = 6  # heartbeat + longest long poll + lease margin, as the config computes it


@dataclass
class Invocation:
    """A running step of a loop: its event, and its lease once claimed."""

    step: LoopStep
    lease: Lease
    claim_id: str
    batches: int = 0


@dataclass
class World:
    store: TokenStore
    clock: FakeClock = field(default_factory=FakeClock)


class TokenProtocol(RuleBasedStateMachine):
    world: World  # set by the test, shared by the examples (the table is emptied per example)

    @initialize()
    def empty_table(self) -> None:
        self.store = self.world.store
        self.clock = self.world.clock
        for row in list(self.store.tokens_of(QUEUE)):
            self.store.release(QUEUE, row.token)
        self.invoker = RecordingInvoker()
        self.reconciler = Reconciler(self.store, self.invoker, "poller", self.clock)
        self.events: list[LoopStep] = []  # async invokes in flight (at least once: one may run twice)
        self.running: list[Invocation] = []
        self.deleted_by_hand: dict[str, float] = {}  # token -> monotonic time
        self.generations: dict[tuple[str, str], int] = {}  # (token, loop_id) -> highest generation seen
        self.seen: list[TokenState] = []  # rows restart has read and may take over
        # Every example starts with every loop running, and a duplicate of each first step still in flight.
        self.scale(MAX_LOOPS)
        for step in list(self.events):
            self._run_step(step, answer_lost=False)

    # -- the control plane -------------------------------------------------------------------------

    def _collect_invokes(self) -> None:
        self.events += [LoopStep.parse(payload) for _, payload in self.invoker.calls]
        self.invoker.calls.clear()

    @rule(wanted=st.sampled_from([0, *range(1, MAX_LOOPS + 1), MAX_LOOPS]))  # 0 (retire all) less often
    def scale(self, wanted: int) -> None:
        self.reconciler.scale(QUEUE, wanted)
        self._collect_invokes()

    @rule(wanted=st.none() | st.integers(0, MAX_LOOPS))
    def restart(self, wanted: int | None) -> None:
        self.reconciler.revive(QUEUE, stale_after_s=STALE_AFTER_S, wanted=wanted)
        self._collect_invokes()

    @precondition(lambda self: self.running)
    @rule()
    def loops_freeze_then_restart_runs(self) -> None:
        """Every running step stops heartbeating past the stale threshold (a freeze, a partition); restart
        then takes their rows over, while the frozen steps still hold their leases."""
        self.clock.advance(STALE_AFTER_S + 1)
        self.restart(None)

    @precondition(lambda self: self.running)
    @rule(pick=st.integers(0, 99))
    def a_late_heartbeat_races_restart(self, pick: int) -> None:
        """A loop that looked dead heartbeats between restart's read and its takeover; whatever restart
        takes over starts at once."""
        self.clock.advance(STALE_AFTER_S + 1)
        self.restart_reads_the_rows()
        self.running[pick % len(self.running)].lease.heartbeat_if_due(deadline=None)
        started = len(self.events)
        while self.seen:
            self.restart_takes_over_what_it_read(0)
        for step in self.events[started:]:
            self._run_step(step, answer_lost=False)
        del self.events[started:]

    @rule()
    def restart_reads_the_rows(self) -> None:
        """The first half of a takeover: restart reads the rows and keeps those it judges stale (as
        Reconciler.revive does). A loop may write before the second half, which must then fail."""
        now_ms = self._now_ms()
        self.seen = [
            row
            for row in self.store.tokens_of(QUEUE)
            if now_ms - (row.last_used if row.last_used is not None else row.created_at or 0) > STALE_AFTER_S * 1000
        ]

    @precondition(lambda self: self.seen)
    @rule(pick=st.integers(0, 99))
    def restart_takes_over_what_it_read(self, pick: int) -> None:
        seen = self.seen.pop(pick % len(self.seen))
        try:
            taken = self.store.takeover(seen, new_loop_id=uuid.uuid4().hex, now_ms=self._now_ms())
        except TokenLost:
            return
        self.events.append(LoopStep(QUEUE, seen.token, taken.loop_id, taken.generation))

    @rule(slot=st.integers(1, MAX_LOOPS))
    def delete_by_hand(self, slot: int) -> None:
        if self.store.release(QUEUE, slot_token(slot)):
            self.deleted_by_hand[slot_token(slot)] = self.clock.monotonic()

    @rule(seconds=st.sampled_from([0.5, 1.9, 2.5, 7.0]))  # within a heartbeat, just past one, past stale
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    # -- async invokes -----------------------------------------------------------------------------

    @precondition(lambda self: self.events)
    @rule(pick=st.integers(0, 99), answer_lost=st.booleans(), never_sent=st.booleans())
    def deliver(self, pick: int, answer_lost: bool, never_sent: bool) -> None:
        """Run one event. ``answer_lost``: the claim lands but its answer never comes, so the step is
        handed over (the same step again, with the claim's id). ``never_sent``: the claim never reaches
        DynamoDB and the step is handed over all the same (it cannot tell the two apart)."""
        step = self.events.pop(pick % len(self.events))
        if never_sent:
            self.events.append(step.handed_over(uuid.uuid4().hex))
            return
        self._run_step(step, answer_lost=answer_lost)

    @precondition(lambda self: self.events)
    @rule(pick=st.integers(0, 99))
    def duplicate_invoke(self, pick: int) -> None:
        """Async invoke is at least once: the same event will run twice."""
        self.events.append(self.events[pick % len(self.events)])

    def _run_step(self, step: LoopStep, *, answer_lost: bool) -> None:
        claim_id = uuid.uuid4().hex
        try:
            claimed = self._claim(step, claim_id)
        except TokenLost:
            return  # superseded, taken over or deleted: it exits before any receive
        if answer_lost:
            self.events.append(step.handed_over(claim_id))
            return
        self._check_generation(step.token, step.loop_id, claimed.generation)
        lease = Lease(
            store=self.store,
            step=step,
            claimed=claimed,
            confirmed_at=self.clock.monotonic(),
            heartbeat_s=HEARTBEAT_S,
            clock=self.clock,
            rand=random.Random(0),
            log_fields={},
        )
        self.running.append(Invocation(step, lease, claim_id))

    @precondition(lambda self: self.events)
    @rule(pick=st.integers(0, 99))
    def drop(self, pick: int) -> None:
        """An invoke that never runs; with ``recurse`` before it, a crashed step."""
        self.events.pop(pick % len(self.events))

    # -- a running step ------------------------------------------------------------------------------

    @precondition(lambda self: self.running)
    @rule(pick=st.integers(0, 99))
    def batch(self, pick: int) -> None:
        """What the loop does before each batch: keep the lease (heartbeat if due), then work."""
        invocation = self.running[pick % len(self.running)]
        lease = invocation.lease
        lease.heartbeat_if_due(deadline=None)
        if lease.lost is not None:
            self.running.remove(invocation)
            return
        if lease.retiring:
            self.running.remove(invocation)
            released = self.store.release(
                QUEUE, invocation.step.token, loop_id=invocation.step.loop_id, if_retiring=True
            )
            if not released:  # the retire was taken back: the loop goes on with its next step
                self.events.append(invocation.step.next())
            return
        # The batch starts now: its loop must still own the row, unless an operator deleted the row by hand
        # within the last heartbeat interval (noticed at the next heartbeat: docs/reliability.md).
        row = self.store.get(QUEUE, invocation.step.token)
        if not self._hand_deleted_since(invocation):
            assert row is not None, f"a batch started on a deleted row: {invocation.step}"
            assert (row.loop_id, row.generation) == (invocation.step.loop_id, lease.generation), (
                f"a batch started under a row owned by {row.loop_id} at {row.generation}: {invocation.step}"
            )
        invocation.batches += 1

    @precondition(lambda self: self.running)
    @rule(pick=st.integers(0, 99))
    def retried_claim_request(self, pick: int) -> None:
        """botocore sends the claim of a running step again (its answer was lost): it must not look like
        somebody else's claim, nor move the row."""
        invocation = self.running[pick % len(self.running)]
        before = self.store.get(QUEUE, invocation.step.token)
        step = invocation.step
        try:
            again = self._claim(step, invocation.claim_id)
        except TokenLost:
            return
        assert before is not None and again.generation == before.generation == invocation.lease.generation

    @precondition(lambda self: self.running)
    @rule(pick=st.integers(0, 99))
    def recurse(self, pick: int) -> None:
        """The step ends its work and invokes the next one, as the loop does once its time is up."""
        invocation = self.running.pop(pick % len(self.running))
        if not invocation.lease.ended:
            self.events.append(invocation.step.next())

    # -- the properties ------------------------------------------------------------------------------

    @invariant()
    def at_most_one_invocation_per_token_can_start_a_batch(self) -> None:
        """...and a deleted row's loop can start none once a heartbeat is due (it would fail)."""
        rows = {row.token: row for row in self.store.tokens_of(QUEUE)}
        able: dict[str, list[Invocation]] = {}
        for invocation in getattr(self, "running", []):
            row = rows.get(invocation.step.token)
            if self._can_start_a_batch(invocation, row):
                assert row is not None or not invocation.lease.due(), f"deleted, yet working: {invocation.step}"
                able.setdefault(invocation.step.token, []).append(invocation)
        for token, invocations in able.items():
            assert len(invocations) <= 1, f"{token}: {[i.step for i in invocations]} could all start a batch"

    # -- helpers -------------------------------------------------------------------------------------

    def _can_start_a_batch(self, invocation: Invocation, row: Any) -> bool:
        """Without writing: would this step start a batch now? Its lease must not have ended, and either
        no heartbeat is due yet, or the heartbeat it would send would succeed (the row is its own)."""
        lease = invocation.lease
        if lease.ended:
            return False
        if not lease.due():
            return not self._hand_deleted_since(invocation)
        return row is not None and (row.loop_id, row.generation) == (invocation.step.loop_id, lease.generation)

    def _hand_deleted_since(self, invocation: Invocation) -> bool:
        deleted = self.deleted_by_hand.get(invocation.step.token)
        return deleted is not None and deleted >= invocation.lease.confirmed_at

    def _check_generation(self, token: str, loop_id: str, generation: int) -> None:
        seen = self.generations.get((token, loop_id), -1)
        assert generation > seen, f"{token}: loop {loop_id} claimed generation {generation} after {seen}"
        self.generations[(token, loop_id)] = generation

    def _claim(self, step: LoopStep, claim_id: str) -> TokenState:
        return self.store.claim(
            QUEUE,
            step.token,
            loop_id=step.loop_id,
            generation=step.generation,
            claim_id=claim_id,
            inherited_claim_ids=step.claim_ids,
            now_ms=self._now_ms(),
        )

    def _now_ms(self) -> int:
        return int(self.clock.time() * 1000)


@pytest.fixture
def world(tokens: TokenStore) -> Iterator[World]:
    yield World(tokens)


def test_token_protocol_model_check(world: World) -> None:
    TokenProtocol.world = world
    run_state_machine_as_test(
        TokenProtocol,
        settings=settings(
            max_examples=30,
            stateful_step_count=40,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
