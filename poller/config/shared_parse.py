"""Reading shared downstreams: the top-level ``downstreams:`` and a queue's ``downstream``, ``weight`` and
``priority`` (docs/config.md). Each error names the field; an unknown name fails when the config loads."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from poller.config.fields import FieldReader
from poller.config.model import QueueConfig
from poller.config.shared import Downstream
from poller.exceptions import shown

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class SharedFields(FieldReader):
    def downstreams(self, raw: Any) -> Mapping[str, Downstream]:
        out: dict[str, Downstream] = {}
        for name, item in self.mapping(raw or {}, "downstreams", set(raw or {})).items():
            where = f"downstreams.{name}"
            if not isinstance(name, str) or not _NAME.match(name):
                raise self.fail(where, "a downstream name is 1-64 letters, digits, '-' or '_', starting alphanumeric")
            data = self.mapping(item, where, {"rate_limit", "max_in_flight"})
            if "rate_limit" not in data:
                raise self.fail(f"{where}.rate_limit", "missing (messages a second, all its queues together)")
            in_flight = data.get("max_in_flight")
            out[name] = Downstream(
                name=name,
                rate_limit=self.rate(data["rate_limit"], f"{where}.rate_limit"),
                max_in_flight=None if in_flight is None else self.integer(in_flight, f"{where}.max_in_flight", 1),
            )
        return MappingProxyType(out)

    def rate(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
            raise self.fail(where, f"expected messages a second > 0, got {shown(value)}")
        return float(value)

    def shared(self, settings: QueueConfig, data: dict[str, Any], where: str) -> QueueConfig:
        """A queue's ``downstream`` (a name from ``downstreams:``, checked by :meth:`resolve`), ``weight``
        (> 0, default 1) and ``priority`` (an integer, higher first, default 0)."""
        name = data.get("downstream")
        if name is not None and not isinstance(name, str):
            raise self.fail(f"{where}.downstream", f"expected the name of a downstream, got {shown(name)}")
        weight = data.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight < math.inf:
            raise self.fail(f"{where}.weight", f"expected a number > 0, got {shown(weight)}")
        priority = data.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise self.fail(f"{where}.priority", f"expected an integer (higher goes first), got {shown(priority)}")
        return replace(settings, downstream=name, weight=float(weight), priority=priority)

    def resolve(
        self, queues: Mapping[str, QueueConfig], downstreams: Mapping[str, Downstream]
    ) -> dict[str, QueueConfig]:
        """Each queue with its downstream's limits; ``max_in_flight`` split over its queues' loops."""
        loops: dict[str, int] = {}
        for key, queue in queues.items():
            if queue.downstream is None:
                continue
            if queue.downstream not in downstreams:
                known = ", ".join(sorted(downstreams)) or "none are defined under downstreams:"
                raise self.fail(f"queues.{key}.downstream", f"unknown downstream {queue.downstream!r} ({known})")
            loops[queue.downstream] = loops.get(queue.downstream, 0) + queue.max_loops
        resolved = {}
        for name, total in loops.items():
            down = downstreams[name]
            if down.max_in_flight is not None:
                if down.max_in_flight < total:
                    raise self.fail(
                        f"downstreams.{name}.max_in_flight",
                        f"{down.max_in_flight} cannot give each of its queues' {total} loops (their max_loops "
                        "together) one message in flight: raise it, or lower max_loops",
                    )
                down = replace(down, in_flight_per_loop=down.max_in_flight // total)
            resolved[name] = down
        return {
            key: q if q.downstream is None else replace(q, shared=resolved[q.downstream]) for key, q in queues.items()
        }
