"""Where a queue's messages go: an in-process handler, a Lambda function invoked synchronously, or an HTTP
endpoint (docs/downstream.md). Each takes an SQS-trigger event and answers which records failed, and how."""

from __future__ import annotations

from poller.targets.base import RETRY, Failure, Failures, Target
from poller.targets.handler import HandlerTarget, resolve_handler
from poller.targets.make import make_target

__all__ = ["RETRY", "Failure", "Failures", "HandlerTarget", "Target", "make_target", "resolve_handler"]
