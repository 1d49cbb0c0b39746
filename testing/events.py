"""Builders of the events CloudWatch alarms deliver, with the real field names: an SNS notification and a
direct alarm action. For tests of handlers and for the sandbox, which delivers alarm changes as AWS would."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from poller.aws.arn import Arn

# The SNS message carries a display name, never the region code (which is only in the alarm ARN).
REGION_NAMES = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "EU (Ireland)",
    "eu-central-1": "EU (Frankfurt)",
    "ap-southeast-2": "Asia Pacific (Sydney)",
}


def cloudwatch_time(moment: datetime) -> str:
    """CloudWatch's timestamp layout: ``2026-11-22T17:00:00.000+0000``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def alarm_message(
    alarm: dict[str, Any], *, new_state: str, old_state: str, reason: str = "", at: datetime | None = None
) -> dict[str, Any]:
    """The alarm JSON that SNS delivers for ``alarm`` (a DescribeAlarms MetricAlarms entry)."""
    arn = alarm["AlarmArn"]
    parsed = _alarm_arn(arn)
    region, account = parsed.region, parsed.account
    trigger: dict[str, Any] = {
        "Period": alarm.get("Period"),
        "EvaluationPeriods": alarm.get("EvaluationPeriods"),
        "ComparisonOperator": alarm.get("ComparisonOperator"),
        "Threshold": alarm.get("Threshold"),
        "TreatMissingData": alarm.get("TreatMissingData", "missing"),
        "EvaluateLowSampleCountPercentile": "",
    }
    if alarm.get("Metrics"):
        trigger["Metrics"] = [_sns_metric(m) for m in alarm["Metrics"]]
    else:
        trigger.update(
            MetricName=alarm.get("MetricName"),
            Namespace=alarm.get("Namespace"),
            StatisticType="Statistic",
            Statistic=str(alarm.get("Statistic", "")).upper(),
            Unit=None,
            Dimensions=[{"value": d["Value"], "name": d["Name"]} for d in alarm.get("Dimensions", [])],
        )
    return {
        "AlarmName": alarm["AlarmName"],
        "AlarmDescription": alarm.get("AlarmDescription"),
        "AWSAccountId": account,
        "AlarmConfigurationUpdatedTimestamp": cloudwatch_time(datetime.now(UTC)),
        "NewStateValue": new_state,
        "NewStateReason": reason or f"Threshold Crossed: moved to {new_state}",
        "StateChangeTime": cloudwatch_time(at or datetime.now(UTC)),
        "Region": REGION_NAMES.get(region, region),
        "AlarmArn": arn,
        "OldStateValue": old_state,
        "OKActions": alarm.get("OKActions", []),
        "AlarmActions": alarm.get("AlarmActions", []),
        "InsufficientDataActions": alarm.get("InsufficientDataActions", []),
        "Trigger": trigger,
    }


def sns_event(messages: list[dict[str, Any]], *, topic_arn: str) -> dict[str, Any]:
    """A Lambda event from an SNS subscription: one record per message, each message a JSON string."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{topic_arn}:{uuid.uuid4()}",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": str(uuid.uuid4()),
                    "TopicArn": topic_arn,
                    "Subject": f'{m["NewStateValue"]}: "{m["AlarmName"]}" in {m["Region"]}'[:100],
                    "Message": json.dumps(m),
                    "Timestamp": m["StateChangeTime"].replace("+0000", "Z"),
                    "SignatureVersion": "1",
                    "MessageAttributes": {},
                },
            }
            for m in messages
        ]
    }


def alarm_action_event(
    alarm: dict[str, Any], *, new_state: str, old_state: str, reason: str = "", at: datetime | None = None
) -> dict[str, Any]:
    """The event an alarm's direct Lambda action delivers (dimensions are a map here, not a list)."""
    arn = alarm["AlarmArn"]
    parsed = _alarm_arn(arn)
    moment = cloudwatch_time(at or datetime.now(UTC))
    if alarm.get("Metrics"):
        metrics = [_direct_metric(m) for m in alarm["Metrics"]]
    else:
        metrics = [
            {
                "id": "m1",
                "metricStat": {
                    "metric": {
                        "namespace": alarm.get("Namespace"),
                        "name": alarm.get("MetricName"),
                        "dimensions": {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])},
                    },
                    "period": alarm.get("Period"),
                    "stat": alarm.get("Statistic"),
                },
                "returnData": True,
            }
        ]
    return {
        "source": "aws.cloudwatch",
        "alarmArn": arn,
        "accountId": parsed.account,
        "time": moment,
        "region": parsed.region,
        "alarmData": {
            "alarmName": alarm["AlarmName"],
            "state": {"value": new_state, "reason": reason or f"moved to {new_state}", "timestamp": moment},
            "previousState": {"value": old_state, "reason": "", "timestamp": moment},
            "configuration": {"description": alarm.get("AlarmDescription"), "metrics": metrics},
        },
    }


def _sns_metric(metric: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"Id": metric["Id"], "ReturnData": metric.get("ReturnData", True)}
    if "Expression" in metric:
        out["Expression"] = metric["Expression"]
        out["Label"] = metric.get("Label", metric["Id"])
    if "MetricStat" in metric:
        stat = metric["MetricStat"]
        out["MetricStat"] = {
            "Metric": {
                "Dimensions": [{"value": d["Value"], "name": d["Name"]} for d in stat["Metric"].get("Dimensions", [])],
                "MetricName": stat["Metric"]["MetricName"],
                "Namespace": stat["Metric"]["Namespace"],
            },
            "Period": stat["Period"],
            "Stat": stat["Stat"],
        }
    return out


def _direct_metric(metric: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": metric["Id"], "returnData": metric.get("ReturnData", True)}
    if "Expression" in metric:
        out["expression"] = metric["Expression"]
    if "MetricStat" in metric:
        stat = metric["MetricStat"]
        out["metricStat"] = {
            "metric": {
                "namespace": stat["Metric"]["Namespace"],
                "name": stat["Metric"]["MetricName"],
                "dimensions": {d["Name"]: d["Value"] for d in stat["Metric"].get("Dimensions", [])},
            },
            "period": stat["Period"],
            "stat": stat["Stat"],
        }
    return out


def _alarm_arn(arn: str) -> Arn:
    parsed = Arn.parse(arn)
    if parsed is None:
        raise ValueError(f"AlarmArn: not an ARN: {arn!r}")
    return parsed
