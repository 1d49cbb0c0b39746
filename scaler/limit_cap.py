"""The limit cap: a queue with a ``rate_limit`` or a shared downstream never wants more loops than its limit
(or its share of a shared downstream) can keep busy (docs/scaling.md#limit-cap). Pure logic, no AWS.

Its inputs are what the loops measured themselves and wrote onto their token rows with their heartbeats
(poller/lease/pace.py): records a second one loop hands over when it is not waiting for its share
(``rps``), and the part of its time it waited (``wait``)::

    limit    = the tightest of its own rate_limit and its share of its shared downstream (scaler/share.py)
    per_loop = mean rps of the rows with fresh figures
    used     = sum of rps x (1 - wait) over them: records a second they hand over now
    base     = ceil(limit / per_loop - 0.02)            the loops the pace says fill the limit
    spare    = ceil(limit x (1 + HEADROOM) / per_loop)  the same with 10 % to spare
    cap      = spare  if spare > base, at least base loops report, and they leave the limit unused
               base   otherwise (fewer loops yet: try base first; or the limit is shown full)

A loop's unwaited pace does not depend on how many loops share the limit, so the cap does not move when
loops are added or removed; it moves when the handler's speed or the share does.

No fresh figures (a new backlog, before the first loop reported): the cap is one loop more than the queue
has (``live + 1``), so a rate-limited queue grows a loop at a time until figures say how many it needs,
instead of jumping to its top step; and not even that while a loop it added is younger than
:data:`WARM_UP_S`, or one of its lanes waits for its first share (``waiting``): that loop has had no time
to report yet, and a loop added meanwhile would only wait with it. Nor while the queue is empty (``empty``):
a drained queue's figures go stale with its work, and there is no backlog to grow for.

When the loops report that they wait for the limit (``wait`` at least :data:`WAIT_BINDS` and ``used`` at
least :data:`FULL_USE` of it, or ``wait`` at least :data:`WAITING_MOSTLY`), the queue is not hovering on
depth: the limit binds, and the cap lowers the count at once to ``spare`` (the cool-down still holds the
step from ``spare`` to ``base``, so a headroom loop that the measurements add and remove cannot flap faster
than the cool-down). The cool-down then also forgets the counts above ``spare`` it remembered (``at_most``
of :func:`scaler.cooldown.remember`): the loops' own figures showed those loops were never needed, and a
loop's wait fades over a minute after the cut (it still reads what it waited while it shared the limit
with the loops removed), so the next decision may not see the limit full and would otherwise bring the
probed loops back for the rest of the cool-down."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from poller.config import QueueConfig
from poller.lease.pace import PaceFigures
from poller.lease.tokens import TokenState

HEADROOM = 0.1
"""Loops for 10 % more than the limit when the loops the pace needs are seen to leave it unused: a pace
measured on a good minute, receives that come back short and a loop recursing."""

WAIT_BINDS = 0.1
"""The loops spend at least this share of their time waiting for a turn: the limit (their share) binds, so
they fill it, and loops past the cap only wait."""

PACE_WOBBLE = 0.02
"""A pace measured within 2 % of ``limit / n`` still counts as n loops filling the limit: the measured pace
wobbles by a record or so a minute around the handler's (2 x 24.99/s against 50/s asked for a third loop),
and n loops then hand over all but 2 % of one loop's pace, well inside :data:`FULL_USE`."""

WARM_UP_S = 10.0
"""A new loop reports its first figures within this long of its row's creation: its lane counts after a
switch (7 s, poller/downstream/shares.py SWITCH_S) and it heartbeats early once it has figures (5 records,
2 s of work, poller/lease/lease.py). Without figures, the cap adds no loop while one is this young: the demo's
stage 3 went from 1 loop to 4 before the first reported, each new one waiting for a share meanwhile."""

WAITING_MOSTLY = 0.5
"""Loops that spend at least half their time waiting for turns are not what sets the pace, whatever they
hand over as their share moves (a lane's switch, a stage that runs dry): loops past the cap would only wait
with them, so the limit is taken to bind (the demo's stage 3 kept 3 loops for a cool-down on a first pace
figure taken in its first seconds, its loops waiting 60-84 % of their time for turns)."""

FULL_USE = 0.95
"""The loops hand over at least this share of the limit: it is full (the issue's target for its use)."""


@dataclass(frozen=True)
class LimitCap:
    """``loops``: the cap; ``limit``: records a second the queue's loops may be given (``whole``: the shared
    downstream's limit, when ``limit`` is the queue's share of it); ``per_loop``: the mean unwaited pace of
    ``figures`` rows (0: no figures, the cap then grows a loop at a time); ``wait``: their mean waiting
    fraction; ``used``: records a second they hand over; ``spare``: the cap with headroom, what the count
    may fall to at once while the loops wait for the limit."""

    loops: int
    limit: float
    per_loop: float
    wait: float
    figures: int
    used: float = 0.0
    spare: int = 0
    whole: float | None = None

    @property
    def binds(self) -> bool:
        """The loops report that they wait, and together hand over the whole limit: it is the limit they
        wait for (not a downstream's pause or a lane's switch), and loops past the cap are not needed."""
        full = self.used >= FULL_USE * self.limit or self.wait >= WAITING_MOSTLY
        return self.figures > 0 and self.wait >= WAIT_BINDS and full

    @property
    def keep_while_waiting(self) -> int | None:
        """What the cool-down may still hold while the limit binds (None: the whole cool-down applies)."""
        return max(self.loops, self.spare) if self.binds else None

    def fields(self) -> dict[str, Any]:
        return {
            "loops": self.loops,
            "limit": round(self.limit, 2),
            "per_loop": round(self.per_loop, 2),
            "wait": round(self.wait, 3),
            "figures": self.figures,
            "used": round(self.used, 2),
            "spare": self.spare,
            "whole": self.whole,
        }

    def describe(self) -> str:
        """For ``sqs-loops status``: "1 loop keeps 30/s busy"."""
        share = "" if self.whole is None else f" (its share of {self.whole:g}/s)"
        if self.figures == 0:
            return (
                f"no figures yet: {self.loops} loop{_s(self.loops)} at most, one more a step ({self.limit:g}/s{share})"
            )
        keeps = "keeps" if self.loops == 1 else "keep"
        return f"{self.loops} loop{_s(self.loops)} {keeps} {self.limit:g}/s busy{share}"


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def cap_loops(
    limit: float,
    figures: Iterable[PaceFigures],
    *,
    live: int = 0,
    headroom: float = HEADROOM,
    whole: float | None = None,
    warming: bool = False,
) -> LimitCap:
    """The cap for ``limit`` records a second from the loops' ``figures``; ``live``: the queue's loops now
    (without figures the cap is ``live + 1``, or ``live`` while one of them is ``warming``: too young to
    have reported). A limit of 0 (a share that others' priority takes whole) keeps one loop, ready for when
    the share comes back."""
    rated = [f for f in figures if f.rps > 0]
    if not rated:
        grown = max(1, live if warming else live + 1)
        return LimitCap(loops=grown, limit=limit, per_loop=0.0, wait=0.0, figures=0, spare=grown, whole=whole)
    per_loop = sum(f.rps for f in rated) / len(rated)
    wait = sum(f.wait for f in rated) / len(rated)
    used = sum(f.rps * (1 - f.wait) for f in rated)
    if limit <= 0:
        return LimitCap(1, limit, per_loop, wait, len(rated), used, 1, whole)
    base = max(1, math.ceil(limit / per_loop - PACE_WOBBLE))
    spare = max(1, math.ceil(limit * (1 + headroom) / per_loop - 1e-9))
    full = used >= FULL_USE * limit or wait >= WAIT_BINDS
    loops = spare if spare > base and len(rated) >= base and not full else base
    return LimitCap(loops, limit, per_loop, wait, len(rated), used, spare, whole)


def limit_of(queue: QueueConfig, share: float | None = None) -> float | None:
    """The most records a second a queue's loops can be given: the tightest of the limits they keep (its own
    ``rate_limit``, its shared downstream's; None: no limit, no cap). ``share``: the queue's share of its
    shared downstream now, if known (scaler/share.py); unknown, the whole downstream's limit counts."""
    limits = [limit.rate_limit for limit in queue.limits if limit is not queue.shared]
    if queue.shared is not None:
        limits.append(queue.shared.rate_limit if share is None else min(share, queue.shared.rate_limit))
    return min(limits, default=None)


def fresh_figures(rows: Iterable[TokenState], *, now_ms: int, fresh_s: float) -> list[PaceFigures]:
    """The figures of ``rows`` written within ``fresh_s`` (a dead loop's say nothing)."""
    return [
        row.pace
        for row in rows
        if row.pace is not None and row.pace_at is not None and now_ms - row.pace_at <= fresh_s * 1000
    ]


def limit_cap(
    queue: QueueConfig,
    rows: Sequence[TokenState],
    *,
    now_ms: int,
    fresh_s: float,
    share: float | None = None,
    waiting: bool = False,
    empty: bool = False,
) -> LimitCap | None:
    """The cap of ``queue`` from its token ``rows`` (None: no limit); ``share``: see :func:`limit_of`;
    ``waiting``: one of its loops waits for its first share of a shared downstream (it cannot report yet);
    ``empty``: the queue holds no message (no backlog to grow for without figures)."""
    limit = limit_of(queue, share)
    if limit is None:
        return None
    live = sum(1 for row in rows if not row.retiring)
    young = any(
        not row.retiring and row.created_at is not None and now_ms - row.created_at < WARM_UP_S * 1000 for row in rows
    )
    warming = waiting or empty or young
    whole = None if share is None or queue.shared is None else queue.shared.rate_limit
    if whole is not None and limit >= whole:
        whole = None  # the share is the whole downstream now: say so plainly
    figures = fresh_figures(rows, now_ms=now_ms, fresh_s=fresh_s)
    return cap_loops(limit, figures, live=live, whole=whole, warming=warming)
