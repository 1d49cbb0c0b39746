"""Typed errors of sqs-loops. Every error that wraps an AWS failure keeps it as ``cause``."""

from __future__ import annotations


class SqsLoopsError(Exception):
    """Base class of every error sqs-loops raises on purpose."""


class ConfigError(SqsLoopsError):
    """The config file is missing, unreadable or invalid. The message names the file, the field and what
    was expected, e.g. ``queues.yml: queues.orders.max_loops: expected an integer >= 1, got 'ten'``."""


class BadLoopEvent(SqsLoopsError):
    """A loop invocation's event is not ``{queue_url, token, loop_id, generation}``."""


class UnknownQueue(SqsLoopsError):
    """A queue URL that no queue of the config matches."""


class TokenLost(SqsLoopsError):
    """A conditional token write found that this loop no longer owns the token.

    ``reason`` is one of ``deleted`` (scale-down or an operator removed the row), ``taken_over`` (restart
    gave it a new loop_id), ``superseded`` (the same loop already claimed a later step: a duplicate
    delivery) or ``unknown`` (the row could not be read back to tell which).
    """

    def __init__(self, reason: str, *, queue_url: str, token: str, cause: BaseException | None = None):
        super().__init__(f"token {token!r} of {queue_url} lost: {reason}")
        self.reason = reason
        self.queue_url = queue_url
        self.token = token
        self.cause = cause


class TokenExists(SqsLoopsError):
    """``create`` found a token row under the same key owned by another loop."""


class RetriesExhausted(SqsLoopsError):
    """A transient AWS error outlasted its retries or the invocation's time. Never ends a loop by itself:
    the loop hands over to its next invocation instead."""

    def __init__(self, what: str, cause: BaseException, attempts: int):
        super().__init__(f"{what}: still failing after {attempts} attempts: {cause}")
        self.what = what
        self.cause = cause
        self.attempts = attempts


class QueueUnavailable(SqsLoopsError):
    """The queue does not exist or this function may not use it (``code`` is the AWS error code)."""

    reason = "queue_unavailable"

    def __init__(self, queue_url: str, code: str, cause: BaseException):
        super().__init__(f"queue {queue_url} unavailable: {code}: {cause}")
        self.queue_url = queue_url
        self.code = code
        self.cause = cause


class HandlerImportError(SqsLoopsError):
    """The dotted handler path of a queue cannot be imported or does not name a callable."""

    reason = "handler_import_error"

    def __init__(self, path: str, cause: BaseException):
        super().__init__(f"handler {path!r} cannot be loaded: {type(cause).__name__}: {cause}")
        self.path = path
        self.cause = cause


class InvocationTooShort(SqsLoopsError):
    """The invocation's time cannot hold one long poll, the handler's budget and the recursion reserve:
    the function's real timeout is below what the config assumes (``poller.timeout_s``)."""

    reason = "invocation_too_short"

    def __init__(self, remaining_s: float, batch_budget_s: float):
        super().__init__(
            f"only {remaining_s:.1f} s left at the start, but a batch needs 1 s of long poll + its budget "
            f"({batch_budget_s:g} s: handler_timeout_s, and a forwarding target's connect time or a rate-limited "
            "queue's wait) + 3 s to recurse: raise the function's timeout or lower handler_timeout_s"
        )


class BadQueueRef(SqsLoopsError, ValueError):
    """Not a queue name, URL or ARN."""

    def __init__(self, value: object):
        super().__init__(
            "expected an SQS queue name (1-80 letters, digits, '-' or '_', optional '.fifo'), a queue URL like "
            f"https://sqs.<region>.amazonaws.com/<account>/<name> or an ARN, got {shown(value)}"
        )
        self.value = value


def shown(value: object) -> str:
    """A value as an error message quotes it: its repr, cut at 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
