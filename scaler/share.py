"""A queue's share of its shared downstream, as the control plane sees it (docs/scaling.md#limit-cap).

The loops of every queue on a downstream already write their lanes into its state row
(poller/downstream/state.py: one lane a loop, with the queue, its weight and priority, and its demand).
From that row the control plane works out what the queue would be given if its loops asked for all they
can use (a backlog): the same allocation the loops make (``poller.downstream.shares.allocate``), with
the queue's own lanes replaced by one lane of unbounded demand. So the answer does not depend on how many
loops the queue has now, and it rises as soon as another queue of the downstream goes idle (its lanes'
demand falls to 0, or they expire).

Reading the row is one consistent GetItem per downstream (restart reads each once for all its queues),
which the scale functions' roles already allow on the token table."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from poller.config import Config, QueueConfig
from poller.downstream.shares import LaneRecord, allocate
from poller.downstream.state import SharedStore
from poller.logs import log

_PROBE = "#limit-cap"
"""The name of the queue's stand-in lane (a lane name of a loop is ``<queue key>#<token>``)."""


def share_of(queue: QueueConfig, lanes: Iterable[LaneRecord], *, now_ms: int) -> float | None:
    """Records a second ``queue`` would get from its shared downstream at ``now_ms`` with a backlog, given
    the other queues' ``lanes`` (None: the queue has no shared downstream)."""
    if queue.shared is None:
        return None
    me = LaneRecord(
        lane=queue.key + _PROBE,
        queue=queue.key,
        weight=queue.weight,
        priority=queue.priority,
        demand=math.inf,
        prev=math.inf,
        switch_ms=now_ms,
        seen_ms=now_ms,
        loop_id="",
    )
    # A lane that gives its slots away (its queue ran dry) counts as the 0 it has announced: its share is ours.
    others = [lane for lane in lanes if lane.queue != queue.key and not lane.gives(now_ms)]
    return allocate([*others, me], queue.shared.rate_limit, now_ms).get(me.lane, 0.0)


def read_lanes(store: SharedStore | None, names: Iterable[str]) -> dict[str, Sequence[LaneRecord]]:
    """Each downstream's lanes (one read each). A downstream whose row cannot be read is left out (logged):
    its queues are then capped at its whole limit, as if the others were idle."""
    out: dict[str, Sequence[LaneRecord]] = {}
    if store is None:
        return out
    for name in sorted(set(names)):
        try:
            out[name] = store.read(name)
        except Exception as exc:  # the whole limit until the next read: more loops, never fewer
            log("warning", "share_read_failed", downstream=name, error=repr(exc))
    return out


def shared_names(config: Config) -> list[str]:
    """The shared downstreams some queue of ``config`` names."""
    return sorted({q.shared.name for q in config.queues.values() if q.shared is not None})


def queue_share(queue: QueueConfig, lanes: dict[str, Sequence[LaneRecord]], *, now_ms: int) -> float | None:
    """``queue``'s share from the lanes read (None: no shared downstream, or its row was not read)."""
    if queue.shared is None or queue.shared.name not in lanes:
        return None
    return share_of(queue, lanes[queue.shared.name], now_ms=now_ms)


FIRST_FIGURES_S = 5.0
"""A loop reports its first figures within this long of its first share counting: 5 records and 2 s of
work (poller/lease/pace.py), then its early heartbeat (poller/lease/lease.py)."""


def waiting_for_share(queue: QueueConfig, lanes: dict[str, Sequence[LaneRecord]], *, now_ms: int) -> bool:
    """Whether a loop of ``queue`` waits for its first share (its lane asks for some, which counts only at its
    switch, 7 s after it was written), or got it too recently to have reported (:data:`FIRST_FIGURES_S`). The
    limit cap adds no loop meanwhile without figures: another would wait as long, and the first loop's
    figures soon say how many the share needs."""
    if queue.shared is None:
        return False

    def starting(lane: LaneRecord) -> bool:
        settled = lane.settled(now_ms)
        if settled.effective(now_ms) == 0:
            return lane.pending(now_ms) and (lane.demand > 0 or (lane.then or 0) > 0)
        # Counting since its switch: by its time, not by ``prev``. A refresh that changes nothing keeps the
        # switch's time but writes the demand as ``prev`` too, and a loop's next step refreshes at once: the
        # demo's stage 3 recursed 0.1 s after its first share counted, and a growth request 1.4 s later,
        # seeing no figures and no 0 before the switch, added a loop that waited 7 s for a share of its own.
        return now_ms - settled.switch_ms < FIRST_FIGURES_S * 1000

    return any(lane.queue == queue.key and starting(lane) for lane in lanes.get(queue.shared.name, ()))
