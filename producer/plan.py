"""Message timers that flatten a burst: a fixed jitter range, or a spread planned with Little's law.

A producer that sends N jobs at once makes the queue N deep at once; the consumers then run at their
ceiling until it drains, and depth alarms fire. SQS message timers (``DelaySeconds``) hide each message
for a while, so the jobs arrive over a window instead. The planner picks that window for a target:

    L = lambda * W          (Little's law: mean jobs in progress = arrival rate * mean time per job)

    lambda  = C / T         arrival rate (jobs/s) that keeps C jobs in progress when each takes T s
    window  = N / lambda    = N * T / C seconds to spread N jobs over, capped at 900 s (the SQS limit)
    peak    = min(N, N * T / window)   expected jobs in progress (all N when the window is shorter than T)
    finish  = window + T    when the last job is done (later if the consumers cannot keep up)

Pure arithmetic and standard library only: producers call this from their own code and from Lambda.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Literal, Protocol

SQS_MAX_DELAY_S = 900
"""SQS message timers (``DelaySeconds``) range from 0 to 900 seconds (15 minutes)."""

Spread = Literal["even", "random"]


class Timers(Protocol):
    """Chooses each message's ``DelaySeconds`` as it is sent."""

    def delay_s(self, index: int, elapsed_s: float, rand: random.Random) -> int:
        """Whole seconds (0-900) for message ``index`` (0-based), sent ``elapsed_s`` seconds after the
        first message of the send."""
        ...


@dataclass(frozen=True)
class Jitter:
    """Each message waits a uniformly random whole number of seconds in ``[low_s, high_s]`` (0-900)."""

    low_s: int
    high_s: int

    def __post_init__(self) -> None:
        if not 0 <= self.low_s <= self.high_s <= SQS_MAX_DELAY_S:
            raise ValueError(
                f"jitter {self.low_s}-{self.high_s}: expected 0 <= low <= high <= {SQS_MAX_DELAY_S} seconds "
                "(the SQS limit of a message timer)"
            )

    def delay_s(self, index: int, elapsed_s: float, rand: random.Random) -> int:
        return rand.randint(self.low_s, self.high_s)

    def summary(self) -> str:
        return f"jitter: each message delayed {self.low_s}-{self.high_s} s at random"


_JITTER = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_jitter(text: str) -> Jitter:
    """``"10-100"`` -> Jitter(10, 100); ``"30"`` -> Jitter(30, 30). Seconds, whole numbers."""
    match = _JITTER.match(text)
    if match is None:
        raise ValueError(f"jitter {text!r}: expected LOW-HIGH in whole seconds, e.g. 10-100")
    low = int(match.group(1))
    high = int(match.group(2)) if match.group(2) is not None else low
    return Jitter(low, high)


@dataclass(frozen=True)
class SpreadPlan:
    """When N jobs should arrive so that about C run at once. Build it with :func:`plan_spread`.

    Times are seconds from the start of the send. ``window_s`` is the spread actually used (at most 900);
    ``wanted_window_s`` the one the target needs (N * T / C, or 0 when N <= C: no spreading is needed).
    ``window_peak_concurrency`` is the jobs in progress the window alone gives; ``expected_peak_concurrency``
    the same, bounded by the consumers' rate when it is known (``consumer_rate_per_s`` * T). ``finish_s``
    is when the last job is expected to be done.
    """

    jobs: int
    mean_job_s: float
    max_concurrency: int
    consumer_rate_per_s: float | None
    spread: Spread
    wanted_window_s: float
    window_s: float
    arrival_rate_per_s: float
    window_peak_concurrency: float
    expected_peak_concurrency: float
    finish_s: float

    @property
    def capped(self) -> bool:
        """True when the target needs a window longer than timers allow: the peak will exceed C."""
        return self.wanted_window_s > self.window_s

    @property
    def consumer_bound(self) -> bool:
        """True when the consumers' rate, not the window, decides the finish (jobs wait in the queue)."""
        return self.consumer_rate_per_s is not None and self.jobs / self.consumer_rate_per_s > self.window_s

    def offset_s(self, index: int, rand: random.Random) -> float:
        """When message ``index`` should become visible, in seconds from the start. ``even``: slot
        ``index`` of N equal slots of the window; ``random``: a uniformly random time within that slot
        (so arrivals stay in send order and never bunch)."""
        if self.jobs <= 1 or self.window_s == 0:
            return 0.0
        slot = self.window_s / self.jobs
        within = rand.random() if self.spread == "random" else 0.0
        return min(index + within, self.jobs) * slot

    def delay_s(self, index: int, elapsed_s: float, rand: random.Random) -> int:
        """The message's offset less the time the send has taken so far, so that a slow send does not
        stretch the window; whole seconds, 0-900."""
        remaining = self.offset_s(index, rand) - elapsed_s
        return max(0, min(SQS_MAX_DELAY_S, math.floor(remaining + 0.5)))

    def summary(self) -> str:
        """A few lines for people: the target, the window, the expected peak and the finish."""
        lines = [
            f"plan: {self.jobs} jobs of {_seconds(self.mean_job_s)} s, at most {self.max_concurrency} at once "
            f"-> {_rate(self.max_concurrency / self.mean_job_s)} jobs/s",
            f"  window {_seconds(self.window_s)} s ({self.spread} spread), {_rate(self.arrival_rate_per_s)} jobs/s "
            f"arrive, expected peak concurrency {self.expected_peak_concurrency:.1f}, "
            f"finish after {_seconds(self.finish_s)} s",
        ]
        if self.capped:
            bound = (
                f", above the {self.max_concurrency} wanted, unless the consumers bound it (max_loops, a rate limit)"
                if self.consumer_rate_per_s is None
                else f"; the consumers' {_rate(self.consumer_rate_per_s)} jobs/s hold it at "
                f"{self.expected_peak_concurrency:.1f}"
            )
            lines.append(
                f"  needs {_seconds(self.wanted_window_s)} s, but message timers stop at {SQS_MAX_DELAY_S} s: "
                f"timers alone let {self.window_peak_concurrency:.1f} run at once{bound}"
            )
        if self.consumer_rate_per_s is not None and self.consumer_bound:
            lines.append(
                f"  the consumers ({_rate(self.consumer_rate_per_s)} jobs/s) need "
                f"{_seconds(self.jobs / self.consumer_rate_per_s)} s: jobs wait in the queue and the finish moves out"
            )
        return "\n".join(lines)


def _seconds(value: float) -> str:
    """800.0 -> '800', 800.5 -> '800.5', 2.4 -> '2.4' (tenths at most)."""
    return f"{value:.1f}".removesuffix(".0")


def _rate(per_s: float) -> str:
    return "unbounded" if math.isinf(per_s) else f"{per_s:.3g}"


def plan_spread(
    jobs: int,
    mean_job_s: float,
    max_concurrency: int,
    *,
    consumer_rate_per_s: float | None = None,
    spread: Spread = "even",
    max_window_s: float = SQS_MAX_DELAY_S,
) -> SpreadPlan:
    """Plan the arrival window of ``jobs`` jobs that take ``mean_job_s`` seconds each, so that about
    ``max_concurrency`` are in progress at once (see the module's formulas).

    ``consumer_rate_per_s``: jobs a second the consumers can finish at most (e.g. the queue's rate limit);
    when given, it bounds the expected peak (rate * T) and moves the finish out if it is the bottleneck.
    ``max_window_s``: the longest window (default and at most 900 s, the SQS timer limit).
    """
    if jobs < 0:
        raise ValueError(f"jobs: expected 0 or more, got {jobs}")
    if not mean_job_s > 0:
        raise ValueError(f"mean job time: expected seconds > 0, got {mean_job_s}")
    if max_concurrency < 1:
        raise ValueError(f"max concurrency: expected 1 or more, got {max_concurrency}")
    if consumer_rate_per_s is not None and not consumer_rate_per_s > 0:
        raise ValueError(f"consumer rate: expected jobs/s > 0, got {consumer_rate_per_s}")
    if not 0 <= max_window_s <= SQS_MAX_DELAY_S:
        raise ValueError(f"max window: expected 0-{SQS_MAX_DELAY_S} s (the SQS timer limit), got {max_window_s}")
    if spread not in ("even", "random"):
        raise ValueError(f"spread: expected 'even' or 'random', got {spread!r}")
    # N <= C fit at once: spreading them would only delay the finish.
    wanted = 0.0 if jobs <= max_concurrency else jobs * mean_job_s / max_concurrency
    window = min(wanted, max_window_s)
    rate = jobs / window if window > 0 else (math.inf if jobs else 0.0)
    # Arrivals spread evenly over W, each busy T: N * T / W in progress once W > T; all N when W <= T.
    peak = float(jobs) if window <= mean_job_s else jobs * mean_job_s / window
    window_peak = peak
    drain_s = window
    if consumer_rate_per_s is not None:
        peak = min(peak, consumer_rate_per_s * mean_job_s)
        drain_s = max(window, jobs / consumer_rate_per_s)
    return SpreadPlan(
        jobs=jobs,
        mean_job_s=mean_job_s,
        max_concurrency=max_concurrency,
        consumer_rate_per_s=consumer_rate_per_s,
        spread=spread,
        wanted_window_s=wanted,
        window_s=window,
        arrival_rate_per_s=rate,
        window_peak_concurrency=window_peak,
        expected_peak_concurrency=peak,
        finish_s=(drain_s + mean_job_s) if jobs else 0.0,
    )
