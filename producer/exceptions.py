"""Errors of the producer library: a send refused before anything went out, or one that stopped midway."""

from __future__ import annotations

from poller.aws.errors import error_code
from poller.exceptions import SqsLoopsError
from producer.report import SendReport


class BadSend(SqsLoopsError):
    """A send that cannot go out as asked (checked before the first message is sent, so nothing is half
    sent): a FIFO queue with message timers, a message SQS would refuse, a plan for another count."""


class MessageTooLarge(BadSend):
    """One message is bigger than the queue accepts (its ``MaximumMessageSize``)."""

    def __init__(self, index: int, size_bytes: int, limit_bytes: int):
        super().__init__(
            f"message {index} is {size_bytes} bytes; the queue accepts at most {limit_bytes} "
            "(its MaximumMessageSize): split it or store the payload elsewhere (e.g. S3) and send a reference"
        )
        self.index = index
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class SendIncomplete(SqsLoopsError):
    """The send stopped: a whole SendMessageBatch call failed for good (queue gone, access denied,
    throttled past the retries). ``report`` counts what was sent before; messages from ``next_index`` on
    were not sent."""

    def __init__(self, report: SendReport, next_index: int, cause: BaseException):
        super().__init__(
            f"{report.queue_url}: stopped at message {next_index} of {report.total} "
            f"({report.sent} sent, {len(report.failed)} failed, {report.unsent} not sent): "
            f"{error_code(cause) or type(cause).__name__}: {cause}"
        )
        self.report = report
        self.next_index = next_index
        self.cause = cause
