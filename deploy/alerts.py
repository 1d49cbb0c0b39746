"""Alarms for the operator (all to the alerts topic), rendered from the config: a queue's oldest message
older than its ``max_age_s``, a loop that stopped for good, and restart failing. docs/operations.md says
what to do when each fires."""

from __future__ import annotations

from typing import Any

from poller.config import Config, QueueConfig
from poller.metrics import DEPLOYMENT, LOOPS_STOPPED, NAMESPACE

ALERTS_TOPIC = "AlertsTopic"
AGE_PERIOD_S = 60  # SQS metrics arrive per minute
AGE_PERIODS = 5
"""The age must stay above max_age_s for 5 minutes in a row: one slow minute is not an incident."""
STOPPED_PERIOD_S = 300
"""A stopped loop is retried by restart every 5 minutes (scaler/reconcile.py ERROR_REVIVE_AFTER_S): one
window sees each attempt."""
RESTART_PERIODS = 3
"""restart runs every minute; 3 failed runs in a row is a control plane that no longer reconciles."""


def alert_resources(config: Config, prefix: str, logical_id: Any) -> dict[str, Any]:
    """The alarms by logical id; ``logical_id(queue key)`` names a queue's resources."""
    out: dict[str, Any] = {}
    for queue in config.queues.values():
        lid = logical_id(queue.key)
        if queue.max_age_s is not None:
            out[f"{lid}AgeAlarm"] = _age_alarm(queue, prefix)
    if config.poller.metrics:  # its metric comes from the loops' EMF lines
        out["LoopStoppedAlarm"] = _stopped_alarm(prefix)
    out["RestartFailingAlarm"] = _alarm(
        name=f"{prefix}-restart-failing",
        description=(
            f"sqs-loops: restart failed {RESTART_PERIODS} minutes in a row: dead loops are not revived and "
            "queues are not reconciled (see its log group)"
        ),
        metric={
            "Namespace": "AWS/Lambda",
            "MetricName": "Errors",
            "Dimensions": [{"Name": "FunctionName", "Value": f"{prefix}-restart"}],
            "Statistic": "Sum",
            "Period": 60,
            "EvaluationPeriods": RESTART_PERIODS,
            "DatapointsToAlarm": RESTART_PERIODS,
        },
    )
    return out


def _age_alarm(queue: QueueConfig, prefix: str) -> dict[str, Any]:
    return _alarm(
        name=f"{prefix}-{queue.key}-too-old",
        description=(
            f"sqs-loops: the oldest message of queue {queue.key} has waited more than max_age_s "
            f"({queue.max_age_s} s) for {AGE_PERIODS} minutes"
        ),
        metric={
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateAgeOfOldestMessage",
            "Dimensions": [{"Name": "QueueName", "Value": queue.queue_name}],
            "Statistic": "Maximum",
            "Period": AGE_PERIOD_S,
            "EvaluationPeriods": AGE_PERIODS,
            "DatapointsToAlarm": AGE_PERIODS,
        },
        threshold=queue.max_age_s or 0,
        operator="GreaterThanThreshold",
    )


def _stopped_alarm(prefix: str) -> dict[str, Any]:
    """One alarm for every queue of the deployment (LoopsStopped by deployment alone): $0.10 a month in all
    rather than per queue, so that a queue at rest costs no alarm of its own but its depth steps. Which
    queue: the metric by queue on the dashboard, or `sqs-loops status`."""
    return _alarm(
        name=f"{prefix}-loop-stopped",
        description=(
            "sqs-loops: a loop stopped for good (its token row's last_error says why, and which queue: "
            "`sqs-loops status`); restart retries it every 5 minutes"
        ),
        metric={
            "Namespace": NAMESPACE,
            "MetricName": LOOPS_STOPPED.name,
            "Dimensions": [{"Name": DEPLOYMENT, "Value": prefix}],
            "Statistic": "Sum",
            "Period": STOPPED_PERIOD_S,
            "EvaluationPeriods": 1,
        },
    )


def _alarm(
    *,
    name: str,
    description: str,
    metric: dict[str, Any],
    threshold: float = 1,
    operator: str = "GreaterThanOrEqualToThreshold",
) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": name,
            "AlarmDescription": description,
            **metric,
            "Threshold": threshold,
            "ComparisonOperator": operator,
            # Quiet data is good news for all three: no age reported (an idle queue), no loop ended, no run.
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": ALERTS_TOPIC}],
            "OKActions": [{"Ref": ALERTS_TOPIC}],
        },
    }
