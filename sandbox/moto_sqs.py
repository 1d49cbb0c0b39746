"""Three moto artefacts the sandbox corrects, in the moto server's process.

**A message handed to two receivers.** Concurrent ReceiveMessage calls on one queue can return the same
message to two consumers at once: moto's ``SQSBackend.receive_message`` checks a message's visibility and then marks it received, with no
lock between the two; the moto server answers requests on parallel threads, so two long polls on one
queue can both see a message visible and both take it (one gets ApproximateReceiveCount 1, the other 2,
within milliseconds). SQS hands a received message to no one else until its visibility timeout ends, so
the demo counted these as unexplained duplicates (docs/reliability.md). Here one pass over a queue's
messages runs at a time; the long poll's waiting happens outside the lock, as in moto, so receivers on a
queue still wait side by side.

**A deleted message that comes back, a sent one that vanishes.** moto's ``Queue.delete_message`` builds the
queue's list of messages again without the deleted one and puts it in place, with no lock: two deletes on
one queue at once (two loops' batches) each start from the same list, and the one that finishes last puts
back the other's messages, which come back when their visibility timeout ends (the demo's "unexplained"
duplicates: a whole batch of 10, received again 5 to 7 s after it was handled, in 2 of about 30 runs); a
message sent meanwhile is appended to the list being replaced, and is lost. SQS deletes a message once.
Here a delete holds the queue's own lock (the one SendMessage appends under) and its receive lock.

**Costs that grow with the square of a queue's depth.** moto 5 checks each message it is about to return
against the queue's retention period by building the queue's whole attribute map (twice), and that map
counts the visible, in-flight and delayed messages in three passes that read the clock (a ``datetime``
built and subtracted) once per message: a receive of 10 from a queue of 1,000 cost about 0.36 s of CPU,
and each message sent (SendMessage reads the same map for ``ContentBasedDeduplication``) 18 ms. On AWS
both are constant-time. In the demo the moto server took 85 % of the process's GIL time, 65 % of it in
those clock reads (``py-spy record --gil`` on `sqs-loops demo`, docs/downstream.md), and the loops it
starved drained the pipeline at a fifth of the vendor's limit. Here the retention check reads the one
attribute it needs, and each count reads the clock once per pass: the same answers (a message is visible
when the clock is past its ``visible_at``, delayed while before its ``delayed_until``, as in moto), in
0.25 ms instead of 18 at a depth of 1,000.
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
    """Make moto's ReceiveMessage and DeleteMessage atomic per queue and its per-message costs independent
    of the queue's depth, in this process (idempotent)."""
    _install_atomic_receive()
    _install_atomic_delete()
    _install_linear_counts()


def _install_atomic_delete() -> None:
    from moto.sqs.models import Queue

    if getattr(Queue.delete_message, "sandbox_atomic", False):
        return
    original = Queue.delete_message

    def delete_message(self: Any, receipt_handle: str) -> None:
        # The receive lock first, as a receive takes it (a send takes only the queue's own): no cycle.
        with _receive_lock(self), self._messages_lock:
            original(self, receipt_handle)

    delete_message.sandbox_atomic = True  # type: ignore[attr-defined]
    Queue.delete_message = delete_message  # type: ignore[method-assign]


def _install_linear_counts() -> None:
    from moto.core.utils import unix_time, unix_time_millis
    from moto.sqs.models import Queue, SQSBackend

    if getattr(SQSBackend.is_message_valid_based_on_retention_period, "sandbox_linear", False):
        return

    def messages(self: Any) -> list[Any]:
        now = unix_time_millis()
        return [m for m in self._messages if now > m.visible_at and now >= m.delayed_until]

    def not_visible(self: Any) -> int:
        now = unix_time_millis()
        return sum(1 for m in self._messages if not now > m.visible_at)

    def delayed(self: Any) -> int:
        now = unix_time_millis()
        return sum(1 for m in self._messages if now < m.delayed_until)

    def within_retention(self: Any, queue_name: str, message: Any) -> bool:
        retention_s = self.get_queue(queue_name).message_retention_period
        return bool(retention_s + message.sent_timestamp / 1000 > unix_time())

    within_retention.sandbox_linear = True  # type: ignore[attr-defined]
    Queue.messages = property(messages)  # type: ignore[assignment,method-assign]
    Queue.approximate_number_of_messages_not_visible = property(not_visible)  # type: ignore[assignment,method-assign]
    Queue.approximate_number_of_messages_delayed = property(delayed)  # type: ignore[assignment,method-assign]
    SQSBackend.is_message_valid_based_on_retention_period = within_retention  # type: ignore[method-assign]


def _install_atomic_receive() -> None:
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
