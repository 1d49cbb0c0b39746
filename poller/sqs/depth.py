"""A queue's depth as the control plane and the loops read it: visible + in flight messages, from one
GetQueueAttributes call (an ordinary $0.40-per-million request; the counts are approximate)."""

from __future__ import annotations

from collections.abc import Mapping

VISIBLE = "ApproximateNumberOfMessages"
IN_FLIGHT = "ApproximateNumberOfMessagesNotVisible"
DEPTH_ATTRIBUTES = (VISIBLE, IN_FLIGHT)
"""In flight counts too, as in the depth alarms: busy loops are not scaled in under themselves."""


def depth_of(attributes: Mapping[str, str]) -> int:
    """Visible + in flight, from a GetQueueAttributes answer's ``Attributes``."""
    return sum(int(attributes.get(name, 0)) for name in DEPTH_ATTRIBUTES)
