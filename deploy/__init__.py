"""From the config to the stack: the per-queue resources, a role per function and alarms behind serverless.yml
(``python -m deploy.render``, called by deploy/render.js). Never shipped to Lambda."""

from __future__ import annotations

from deploy.iam import function_statements
from deploy.packaging import SHIPPED_PACKAGES, package_patterns
from deploy.render import depth_alarm_properties, logical_id, render

__all__ = [
    "SHIPPED_PACKAGES",
    "depth_alarm_properties",
    "function_statements",
    "logical_id",
    "package_patterns",
    "render",
]
