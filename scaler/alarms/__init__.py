"""The depth alarms the control plane follows: their names, the state changes SNS or a direct alarm action
delivers, and their current states read from CloudWatch."""

from __future__ import annotations

from scaler.alarms.events import AlarmChange, alarm_changes
from scaler.alarms.names import DepthAlarm, depth_alarm_name, depth_alarm_names, parse_depth_alarm
from scaler.alarms.states import AlarmState, AlarmStates

__all__ = [
    "AlarmChange",
    "AlarmState",
    "AlarmStates",
    "DepthAlarm",
    "alarm_changes",
    "depth_alarm_name",
    "depth_alarm_names",
    "parse_depth_alarm",
]
