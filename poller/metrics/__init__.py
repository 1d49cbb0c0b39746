"""Metrics in CloudWatch's embedded metric format: written as part of the loops' and the control plane's
JSON log lines, so they cost no API call (docs/operations.md lists each one)."""

from __future__ import annotations

from poller.metrics.emf import (
    MAX_DIMENSIONS_PER_SET,
    MAX_METRICS_PER_DIRECTIVE,
    MAX_VALUES_PER_METRIC,
    deployment,
    with_metrics,
)
from poller.metrics.names import (
    ALL_METRICS,
    BATCH_DURATION,
    DEPLOYMENT,
    DIMENSIONS,
    HANDLER_DURATION,
    LIVE_LOOPS,
    LOOPS_RETIRED,
    LOOPS_REVIVED,
    LOOPS_STARTED,
    LOOPS_STOPPED,
    MESSAGE_AGE,
    MESSAGES_FAILED,
    MESSAGES_HANDLED,
    MESSAGES_RECEIVED,
    MESSAGES_RETURNED,
    NAMESPACE,
    QUEUE,
    RECURSIONS,
    SHARE_WAIT,
    WANTED_LOOPS,
    Metric,
)

__all__ = [
    "ALL_METRICS",
    "BATCH_DURATION",
    "DEPLOYMENT",
    "DIMENSIONS",
    "HANDLER_DURATION",
    "LIVE_LOOPS",
    "LOOPS_RETIRED",
    "LOOPS_REVIVED",
    "LOOPS_STARTED",
    "LOOPS_STOPPED",
    "MAX_DIMENSIONS_PER_SET",
    "MAX_METRICS_PER_DIRECTIVE",
    "MAX_VALUES_PER_METRIC",
    "MESSAGES_FAILED",
    "MESSAGES_HANDLED",
    "MESSAGES_RECEIVED",
    "MESSAGES_RETURNED",
    "MESSAGE_AGE",
    "NAMESPACE",
    "QUEUE",
    "RECURSIONS",
    "SHARE_WAIT",
    "WANTED_LOOPS",
    "Metric",
    "deployment",
    "with_metrics",
]
