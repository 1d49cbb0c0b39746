"""What a send did: every message is sent, or named in ``failed`` with SQS's reason."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FailedMessage:
    """A message SQS did not take: ``index`` into the messages given, SQS's ``code`` and ``detail``, and
    ``sender_fault`` (True: the message itself was refused and sending it again cannot help)."""

    index: int
    code: str
    detail: str
    sender_fault: bool

    def __str__(self) -> str:
        return f"message {self.index}: {self.code}: {self.detail}"


@dataclass(frozen=True)
class SendReport:
    """What a send did. ``sent + len(failed) == total`` when it ran to the end."""

    queue_url: str
    total: int
    sent: int
    failed: tuple[FailedMessage, ...]
    batches: int
    retried: int
    elapsed_s: float
    max_delay_s: int

    @property
    def ok(self) -> bool:
        return self.sent == self.total

    @property
    def unsent(self) -> int:
        """Messages neither sent nor refused: those a stopped send never got to."""
        return self.total - self.sent - len(self.failed)

    def summary(self) -> str:
        line = (
            f"sent {self.sent} of {self.total} messages to {self.queue_url} in {self.batches} batches, "
            f"{self.elapsed_s:.1f} s; failed {len(self.failed)}"
        )
        extras = [f"retried {self.retried} entries"] if self.retried else []
        extras += [f"longest timer {self.max_delay_s} s"] if self.max_delay_s else []
        return line + (f" ({', '.join(extras)})" if extras else "")
