"""sqs-loops control plane: alarm-driven scaling, restart and reconcile, operator overrides."""

from __future__ import annotations

from scaler.alarms.events import AlarmChange, alarm_changes
from scaler.alarms.names import DepthAlarm, depth_alarm_name, depth_alarm_names, parse_depth_alarm
from scaler.alarms.states import AlarmStates
from scaler.control import ControlPlane
from scaler.exceptions import BadAlarmEvent, ForeignAlarm, OverrideError
from scaler.overrides import OverrideStore, bind_override_table
from scaler.reconcile import Changes, Reconciler, slot_number, slot_token
from scaler.wanted import wanted_loops

__all__ = [
    "AlarmChange",
    "AlarmStates",
    "BadAlarmEvent",
    "Changes",
    "ControlPlane",
    "DepthAlarm",
    "ForeignAlarm",
    "OverrideError",
    "OverrideStore",
    "Reconciler",
    "alarm_changes",
    "bind_override_table",
    "depth_alarm_name",
    "depth_alarm_names",
    "parse_depth_alarm",
    "slot_number",
    "slot_token",
    "wanted_loops",
]
