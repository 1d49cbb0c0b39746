"""Errors of the control plane."""

from __future__ import annotations

from poller.exceptions import SqsLoopsError


class BadAlarmEvent(SqsLoopsError):
    """An event that is neither an SNS-wrapped alarm notification nor a direct alarm action, or one whose
    fields are missing or of the wrong type. The message names the field."""


class ForeignAlarm(SqsLoopsError):
    """An alarm that is not one of this deployment's depth alarms (another prefix, an unknown queue key or
    step, or dimensions naming another queue)."""


class OverrideError(SqsLoopsError):
    """An operator override outside what the queue's config allows."""
