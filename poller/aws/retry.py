"""Retry with capped, fully jittered exponential backoff, for transient AWS errors only."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from poller.aws.errors import error_code, is_transient
from poller.clock import Clock, Deadline
from poller.exceptions import RetriesExhausted
from poller.logs import log

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """``base_s`` doubles per attempt up to ``cap_s``; each wait is uniform in [0, that] ("full jitter",
    so that many loops throttled together do not retry in step). ``max_attempts`` counts the first try."""

    base_s: float = 0.1
    cap_s: float = 5.0
    max_attempts: int = 8

    def delay_s(self, attempt: int, rand: random.Random) -> float:
        return rand.uniform(0, min(self.cap_s, self.base_s * 2 ** (attempt - 1)))


DEFAULT_BACKOFF = Backoff()


def retry_transient(
    call: Callable[[], T],
    *,
    what: str,
    clock: Clock,
    rand: random.Random,
    backoff: Backoff = DEFAULT_BACKOFF,
    deadline: Deadline | None = None,
    reserve_s: float = 0.0,
    attempt_s: float = 0.0,
    fields: dict[str, object] | None = None,
) -> T:
    """Run ``call``; on a transient error wait and try again. Raises :class:`RetriesExhausted` when the
    attempts are used up or the next wait and one more attempt (``attempt_s``, its worst case: every
    timeout of its client run out) would leave less than ``reserve_s`` before ``deadline``. Any other error
    propagates at once."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc):
                raise
            delay = backoff.delay_s(attempt, rand)
            out_of_time = deadline is not None and deadline.remaining_s() - delay - attempt_s < reserve_s
            if attempt >= backoff.max_attempts or out_of_time:
                raise RetriesExhausted(what, exc, attempt) from exc
            log(
                "warning",
                "transient_error",
                what=what,
                code=error_code(exc) or type(exc).__name__,
                attempt=attempt,
                retry_in_s=round(delay, 3),
                **(fields or {}),
            )
            clock.sleep(delay)
