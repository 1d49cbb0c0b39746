"""The limit cap: a queue with a ``rate_limit`` or a shared downstream never wants more loops than that
limit can keep busy (docs/scaling.md#limit-cap). Pure logic, no AWS.

Its inputs are what the loops measured themselves and wrote onto their token rows with their heartbeats
(poller/lease/pace.py): records a second one loop hands over when it is not waiting for its share. The
cap is the loops that pace needs to fill the limit, with :data:`HEADROOM`::

    per_loop = mean pace_rps of the rows with fresh figures
    cap      = ceil(limit x (1 + HEADROOM) / per_loop)          at least 1; limit: see limit_of

A loop's unwaited pace does not depend on how many loops share the limit, so the cap does not move when
loops are added or removed (no flapping); it moves when the handler's speed does. Rows without figures,
or with figures older than ``stale_after_s``, say nothing: a queue with none is not capped."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from poller.config import QueueConfig
from poller.lease.tokens import TokenState

HEADROOM = 0.1
"""Loops for 10 % more than the limit: a pace measured on a good minute, receives that come back short and
a loop recursing must not leave the limit unused."""


@dataclass(frozen=True)
class LimitCap:
    """``loops``: the cap; ``limit``: records a second; ``per_loop``: the mean unwaited pace of ``figures``
    rows; ``wait``: their mean share-wait fraction (1: all waiting, the limit binds)."""

    loops: int
    limit: float
    per_loop: float
    wait: float
    figures: int

    def fields(self) -> dict[str, Any]:
        return {
            "loops": self.loops,
            "limit": self.limit,
            "per_loop": round(self.per_loop, 2),
            "wait": round(self.wait, 3),
            "figures": self.figures,
        }

    def describe(self) -> str:
        """For ``sqs-loops status``: "1 loop keeps 30/s busy"."""
        return f"{self.loops} loop{'' if self.loops == 1 else 's'} keep{'s' if self.loops == 1 else ''} {self.limit:g}/s busy"


def cap_loops(
    limit: float, paces: Iterable[float], waits: Iterable[float] = (), *, headroom: float = HEADROOM
) -> LimitCap | None:
    """The cap for ``limit`` records a second from the loops' unwaited paces (None: no pace to go by)."""
    rates = [rps for rps in paces if rps > 0]
    if not rates or limit <= 0:
        return None
    per_loop = sum(rates) / len(rates)
    shares = list(waits)
    wait = sum(shares) / len(shares) if shares else 0.0
    loops = max(1, math.ceil(limit * (1 + headroom) / per_loop - 1e-9))
    return LimitCap(loops=loops, limit=limit, per_loop=per_loop, wait=wait, figures=len(rates))


def limit_of(queue: QueueConfig) -> float | None:
    """The most records a second a queue's loops can be given: the tightest of the limits they keep (its
    own ``rate_limit``, its shared downstream's; None: no limit, no cap). On a shared downstream that is
    the whole downstream's limit, not the queue's share now: the share rises to it when the other queues
    go idle, and the cap must not stand in the way (docs/scaling.md#limit-cap)."""
    return min((limit.rate_limit for limit in queue.limits), default=None)


def limit_cap(queue: QueueConfig, rows: Iterable[TokenState], *, now_ms: int, fresh_s: float) -> LimitCap | None:
    """The cap of ``queue`` from its token ``rows``: only figures written within ``fresh_s`` count."""
    limit = limit_of(queue)
    if limit is None:
        return None
    fresh = [
        row.pace
        for row in rows
        if row.pace is not None and row.pace_at is not None and now_ms - row.pace_at <= fresh_s * 1000
    ]
    return cap_loops(limit, (p.rps for p in fresh), (p.wait for p in fresh))
