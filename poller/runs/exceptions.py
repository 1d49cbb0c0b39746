"""Typed errors of runs (docs/runs.md)."""

from __future__ import annotations

from poller.exceptions import SqsLoopsError


class RunError(SqsLoopsError):
    """A run cannot be started, grown or read as asked."""


class BadRunName(RunError):
    """A run name that is empty, too long or has characters a message attribute cannot carry."""


class RunExists(RunError):
    """``start_run`` found a run of that name already (pass ``exist_ok=True`` to send into it)."""


class UnknownRun(RunError):
    """Sending into a run that was never started (or whose row was deleted)."""


class RunFinished(RunError):
    """Sending into a run that already finished: its notice is out, so new work would go uncounted by anyone
    who listened. Start a new run."""
