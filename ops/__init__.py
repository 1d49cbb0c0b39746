"""The ``sqs-loops`` operator CLI (docs/operations.md): status, scale, pause, resume, redrive, send, cost,
and the sandbox and demo. Works against a deployment or the sandbox; never shipped to Lambda."""

from __future__ import annotations

from ops.cli import build_parser, main
from ops.operator import Operator, RedriveIncomplete

__all__ = [
    "Operator",
    "RedriveIncomplete",
    "build_parser",
    "main",
]
