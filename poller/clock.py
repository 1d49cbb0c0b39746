"""Time, injected: the loop reads the wall clock for ``last_used`` and a monotonic clock for its budget."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Epoch seconds (wall clock): what ``last_used`` records."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start that never goes back: what deadlines and ages use."""

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


def epoch_ms(clock: Clock) -> int:
    return int(clock.time() * 1000)


@dataclass(frozen=True)
class Deadline:
    """The end of this invocation, as the Lambda context tells it (asked each time, not copied once: the
    context is the authority, and a local runtime may shorten it to stop a step)."""

    context: Any

    def remaining_s(self) -> float:
        return float(self.context.get_remaining_time_in_millis()) / 1000
