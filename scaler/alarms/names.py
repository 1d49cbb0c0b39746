"""The alarm-name contract: ``<LOOPS_PREFIX>-<queue key>-depth-<n>``, n the 1-based step of ``scale_steps``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from poller.config import Config, QueueConfig
from scaler.exceptions import ForeignAlarm

_DEPTH_SUFFIX = re.compile(r"^(?P<key>.+)-depth-(?P<step>[1-9][0-9]*)$")


def depth_alarm_name(prefix: str, queue_key: str, step: int) -> str:
    """The name of the depth alarm of ``step`` (1-based)."""
    return f"{prefix}-{queue_key}-depth-{step}"


def depth_alarm_names(prefix: str, queue: QueueConfig) -> list[str]:
    return [depth_alarm_name(prefix, queue.key, n) for n in range(1, len(queue.scale_steps) + 1)]


@dataclass(frozen=True)
class DepthAlarm:
    """A depth alarm of this deployment: its queue and 1-based step."""

    queue: QueueConfig
    step: int


def parse_depth_alarm(name: str, *, prefix: str, config: Config) -> DepthAlarm:
    """Which queue and step an alarm name stands for; :class:`ForeignAlarm` says why it is not ours."""
    if not name.startswith(prefix + "-"):
        raise ForeignAlarm(f"alarm {name!r} does not carry this deployment's prefix {prefix!r}")
    match = _DEPTH_SUFFIX.match(name[len(prefix) + 1 :])
    if match is None:
        raise ForeignAlarm(f"alarm {name!r} is not named <prefix>-<queue key>-depth-<n>")
    key, step = match["key"], int(match["step"])
    if key not in config.queues:
        raise ForeignAlarm(f"alarm {name!r} names queue key {key!r}, which is not in {config.path}")
    queue = config.queues[key]
    if step > len(queue.scale_steps):
        raise ForeignAlarm(f"alarm {name!r}: queue {key!r} has {len(queue.scale_steps)} scale steps, not {step}")
    return DepthAlarm(queue, step)
