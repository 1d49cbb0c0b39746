"""When a loop stops: its lease lost, or its row retiring. A retiring loop under a rate limit or a shared
downstream first spends the share it holds until its 0 counts (docs/downstream.md, "Coming and going"), so
that the share passes to the loops that stay with no gap; without a limit it stops after the batch in hand.
"""

from __future__ import annotations

from poller.clock import Clock
from poller.downstream.coordinator import Turns
from poller.lease.lease import Lease
from poller.logs import log
from poller.timing import DRAIN_MARGIN_S


def must_stop(lease: Lease, rate: Turns | None, clock: Clock, fields: dict[str, object], *, may_drain: bool) -> bool:
    """Whether the loop must stop after the batch in hand. Only the loop's own thread starts a drain
    (``may_drain``, one write: Turns.drain); a record thread goes on with the batch in hand meanwhile."""
    if lease.lost is not None:
        return True
    if not lease.retiring:
        if rate is not None and rate.drain_ends is not None:
            rate.rejoin()  # the retire request was taken back (a scale-up)
        return False
    if rate is None:
        return True
    if rate.drain_ends is None:
        if not may_drain:
            return False
        ends = rate.drain()
        log("info", "draining_share", for_s=round(max(0.0, ends - clock.time()), 2), **fields)
    assert rate.drain_ends is not None
    return clock.time() >= rate.drain_ends - DRAIN_MARGIN_S


def share_left(rate: Turns | None, clock: Clock) -> bool:
    """Whether a retiring loop's share still counts for a while (its 0 not yet): a retire noticed as the
    step's time ran out, or a drain the step could not finish. The next step spends the rest."""
    if rate is None:
        return False
    return rate.drain_ends is None or clock.time() < rate.drain_ends - DRAIN_MARGIN_S
