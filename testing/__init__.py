"""Event builders for your own tests: the alarm notifications SNS and a direct alarm action deliver to the
scale functions (docs/operations.md). Never shipped to Lambda."""

from __future__ import annotations

from testing.events import alarm_action_event, alarm_message, cloudwatch_time, sns_event

__all__ = [
    "alarm_action_event",
    "alarm_message",
    "cloudwatch_time",
    "sns_event",
]
