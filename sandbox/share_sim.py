"""A shared downstream simulated on an injected clock (no real sleeping): loops of several queues, coming and
going, each with the real :class:`~poller.downstream.coordinator.Turns`, against an in-memory state row with
DynamoDB's semantics for the one conditional UpdateItem a refresh makes. What it measures: the most
messages in any 5 s, the share used while there is a backlog, each queue's share, and the coordination
calls per message (tests/test_shared_sim.py runs it short, bench/shared_downstream.py long)."""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from poller.config.shared import Downstream
from poller.downstream.coordinator import HOLD_MAX_S, Turns, turns_for
from poller.downstream.shares import SWITCH_S, TTL_S, LaneRecord, max_window
from poller.downstream.state import LaneTaken

START_S = 1_800_000_000.0


class MemoryStore:
    """The state rows in memory, with the condition the DynamoDB store writes under (cf. state.py)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, LaneRecord]] = {}
        self.calls = 0
        self.down_until = -1.0  # the state unreachable until this time (a fault)
        self.now = START_S

    def refresh(self, downstream: str, lane: LaneRecord, *, drop: Sequence[str]) -> list[LaneRecord]:
        self.calls += 1
        if self.now < self.down_until:
            raise ConnectionError("state row unreachable (simulated)")
        row = self.rows.setdefault(downstream, {})
        held = row.get(lane.lane)
        if held is not None and held.loop_id != lane.loop_id and not _free(held, lane):
            raise LaneTaken(lane.lane)
        row[lane.lane] = lane
        for gone in drop:
            if gone != lane.lane:
                row.pop(gone, None)
        return list(row.values())

    def read(self, downstream: str) -> list[LaneRecord]:
        self.calls += 1
        if self.now < self.down_until:
            raise ConnectionError("state row unreachable (simulated)")
        return list(self.rows.get(downstream, {}).values())


def _free(held: LaneRecord, lane: LaneRecord) -> bool:
    """The state.py condition: the lane expired or released, or its holder is an earlier generation whose
    views ran out."""
    old = held.seen_ms < lane.seen_ms - TTL_S * 1000 or held.released
    return old or (held.generation < lane.generation and held.seen_ms < lane.seen_ms - SWITCH_S * 1000)


class SimClock:
    """One loop's clock: the simulation's time plus this host's skew."""

    def __init__(self, sim: Simulation, skew_s: float):
        self.sim = sim
        self.skew_s = skew_s

    def time(self) -> float:
        return self.sim.now + self.skew_s

    def monotonic(self) -> float:
        return self.sim.now - START_S

    def sleep(self, seconds: float) -> None:
        raise AssertionError("a simulated loop never sleeps: it is scheduled")


@dataclass(frozen=True)
class LoopPlan:
    queue: str
    start_s: float
    stop_s: float
    token: str


@dataclass(frozen=True)
class QueuePlan:
    weight: float = 1.0
    priority: int = 0
    backlog: tuple[tuple[float, float], ...] = ((0.0, 1e9),)  # (from, to) seconds with more than it can use
    call_s: float | None = None  # its handler's time a call (None: the simulation's); a slow one keeps up by itself


@dataclass
class SimResult:
    rate_limit: float
    duration_s: float
    calls: list[tuple[float, str, int]] = field(default_factory=list)  # (time, queue, messages)
    state_calls: int = 0

    def messages(self) -> int:
        return sum(units for _, _, units in self.calls)

    def max_ratio_5s(self) -> float:
        stamps = [t for t, _, units in self.calls for _ in range(units)]
        return max_window(stamps, 5.0) / (5.0 * self.rate_limit)

    def used(self, start_s: float, end_s: float, queue: str | None = None) -> float:
        """Messages in [start, end) over what the limit allows in that time."""
        got = sum(u for t, q, u in self.calls if start_s <= t - START_S < end_s and queue in (None, q))
        return got / (self.rate_limit * (end_s - start_s))

    def calls_per_message(self) -> float:
        return self.state_calls / max(1, self.messages())


class Simulation:
    """Loops that take a batch, wait for their turn, call (``call_s``), and receive again (``receive_s``)."""

    def __init__(
        self,
        limit: Downstream,
        queues: dict[str, QueuePlan],
        loops: Sequence[LoopPlan],
        *,
        seed: int = 1,
        batch_size: int = 10,
        per_record: bool = False,
        call_s: float = 0.03,
        receive_s: float = 0.02,
    ):
        self.limit = limit
        self.queues = queues
        self.plans = list(loops)
        self.rand = random.Random(seed)
        self.batch_size = batch_size
        self.per_record = per_record
        self.call_s = call_s
        self.receive_s = receive_s
        self.store = MemoryStore()
        self.now = START_S

    def run(self, duration_s: float) -> SimResult:
        result = SimResult(rate_limit=self.limit.rate_limit, duration_s=duration_s)
        events: list[tuple[float, int, int]] = []  # (time, order, loop index)
        turns: dict[int, Turns] = {}
        held: dict[int, int] = {}  # messages in hand, waiting for a turn
        since: dict[int, float] = {}
        for n, plan in enumerate(self.plans):
            heapq.heappush(events, (START_S + plan.start_s, n, n))
        order = len(self.plans)
        while events:
            self.now, _, n = heapq.heappop(events)
            self.store.now = self.now
            plan = self.plans[n]
            at = self.now - START_S
            if at >= duration_s or at >= plan.stop_s:
                continue
            if n not in turns:
                queue = self.queues[plan.queue]
                turns[n] = turns_for(
                    [self.limit],
                    self.store,
                    queue=plan.queue,
                    token=plan.token,
                    loop_id=f"loop-{n}",
                    weight=queue.weight,
                    priority=queue.priority,
                    clock=SimClock(self, self.rand.uniform(-0.005, 0.005)),
                    log_fields={},
                )
            loop = turns[n]
            units = 1 if self.per_record else held.get(n, 0)
            if held.get(n) and (self.now - since[n] > HOLD_MAX_S or not loop.fits(units)):
                held[n] = 0  # given back, as Turns.acquire does after HOLD_MAX_S
                loop.received(0, 0)
                loop.shares[0].backlog = True
                wait = self.receive_s
            elif held.get(n):
                wait = loop.try_take(units)
                if wait == 0:
                    result.calls.append((self.now, plan.queue, units))
                    held[n] -= units
                    wait = self.queues[plan.queue].call_s or self.call_s
                else:
                    loop.waited(wait)  # as the dispatcher counts it (a simulated loop calls on one thread)
            else:
                asked = loop.receive_limit(self.batch_size, per_record=self.per_record)
                busy = any(a <= at < b for a, b in self.queues[plan.queue].backlog)
                got = asked if busy else 0
                loop.received(got, asked)
                held[n], since[n] = got, self.now
                wait = self.receive_s if got else max(self.receive_s, loop.ready_in_s() or 1.0)
            order += 1
            heapq.heappush(events, (self.now + wait, order, n))
        result.state_calls = self.store.calls
        return result
