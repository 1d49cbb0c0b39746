"""One moto artefact the sandbox corrects: concurrent ReceiveMessage calls on one queue can return the same
message to two consumers at once.

moto's ``SQSBackend.receive_message`` checks a message's visibility and then marks it received, with no
lock between the two; the moto server answers requests on parallel threads, so two long polls on one
queue can both see a message visible and both take it (one gets ApproximateReceiveCount 1, the other 2,
within milliseconds). SQS hands a received message to no one else until its visibility timeout ends, so
the demo counted these as unexplained duplicates (docs/reliability.md). Here one pass over a queue's
messages runs at a time; the long poll's waiting happens outside the lock, as in moto, so receivers on a
queue still wait side by side.
"""

from __future__ import annotations

import threading
import time
from typing import Any

_LOCK_ATTRIBUTE = "_sandbox_receive_lock"
POLL_STEP_S = 1.0
"""moto's own long poll waits at most this long between passes over the queue."""


def _receive_lock(queue: Any) -> threading.Lock:
    # dict.setdefault is atomic under the GIL: two first receivers end up with the same lock.
    lock: threading.Lock = queue.__dict__.setdefault(_LOCK_ATTRIBUTE, threading.Lock())
    return lock


def install() -> None:
    """Make moto's ReceiveMessage atomic per queue, in this process (idempotent)."""
    from moto.sqs.models import SQSBackend

    if getattr(SQSBackend.receive_message, "sandbox_atomic", False):
        return
    original = SQSBackend.receive_message

    def receive_message(
        self: Any,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> list[Any]:
        queue = self.get_queue(queue_name)
        polling_end = time.time() + wait_seconds_timeout
        while True:
            with _receive_lock(queue):  # one pass, without waiting: moto checks and marks each message
                result: list[Any] = original(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
            remaining = polling_end - time.time()
            if result or remaining <= 0:
                return result
            queue.wait_for_messages(min(POLL_STEP_S, remaining))

    receive_message.sandbox_atomic = True  # type: ignore[attr-defined]
    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
