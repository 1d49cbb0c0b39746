"""What a loop needs from outside (AWS clients, the token store, time, chance), injected so tests control
them; the Lambda entry point (poller/handler.py) makes the real ones."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from poller.clock import Clock
from poller.downstream.state import SharedStore
from poller.lease.recursion import Invoker
from poller.lease.tokens import TokenStore
from poller.runs import RunBook


@dataclass(frozen=True)
class LoopServices:
    """What a loop needs from outside, injected so tests control AWS, time and chance."""

    sqs_client: Any
    tokens: TokenStore
    invoker: Invoker
    region: str
    clock: Clock
    rand: random.Random
    runs: RunBook | None = None  # None: run messages are handled but not counted
    sqs_receive_client: Callable[[int], Any] | None = None  # by wait (s); None: sqs_client for long polls too
    scale_up_function: str | None = None  # None: the loop never asks for growth (poller/loop/growth.py)
    shared: SharedStore | None = None  # downstreams' state rows; None: made on the token table when needed
