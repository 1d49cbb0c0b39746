"""From the config to the stack: the per-queue resources, IAM and alarms behind serverless.yml
(``python -m deploy.render``, called by deploy/render.js). Never shipped to Lambda."""

from __future__ import annotations

from deploy.render import depth_alarm_properties, logical_id, render

__all__ = [
    "depth_alarm_properties",
    "logical_id",
    "render",
]
