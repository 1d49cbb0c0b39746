"""Render the per-queue CloudFormation of a deployment from the config: ``python -m deploy.render``.

``serverless.yml`` pulls this in through ``deploy/render.js`` on every ``serverless package`` or ``deploy``,
so ``queues.yml`` (or ``$SQS_LOOPS_CONFIG``) is the one source of truth; the sandbox creates its alarms
from the same rendering. The output is JSON: ``resources`` (CloudFormation resources), ``iam`` (role
statements), ``config_path`` (the config file, relative to the project root, to ship and point
``SQS_LOOPS_CONFIG`` at), ``package_patterns`` (our code, the config and the handlers' packages),
``poller_timeout_s`` and ``tracing`` (X-Ray on every function: ``poller.tracing``). The dashboard and the
operator's alarms come from deploy/dashboard.py and deploy/alerts.py.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from deploy.alerts import alert_resources
from deploy.dashboard import dashboard_resources
from poller.config import Config, QueueConfig, config_path, load_config
from poller.exceptions import ConfigError
from poller.sqs.queue_ref import QueueRef
from scaler.alarms.names import depth_alarm_names

NAMESPACE = "SqsLoops"
SHIPPED_PACKAGES = ("poller", "scaler", "producer")
"""Our packages that run in Lambda; deploy/, ops/, sandbox/ and testing/ never go into the zip."""
METRIC_PERIOD_S = 60  # SQS metrics arrive at 1-minute granularity
DLQ_RETENTION_S = 14 * 24 * 3600  # the longest SQS keeps a message: time to look and redrive
RUNAWAY_INVOCATIONS_PER_LOOP = 10
"""Poller invocations per loop per 5 minutes above which the health alarm fires. A healthy loop recurses
once per invocation (minutes long), so 10 in 5 minutes is far above normal and far below a runaway
chain, which makes thousands."""

SUB = "Fn::Sub"
TABLE = "TokenTable"
UP_TOPIC, DOWN_TOPIC, ALERTS_TOPIC = "ScaleUpTopic", "ScaleDownTopic", "AlertsTopic"
RUNS_TOPIC = "RunsTopic"
"""One notice per finished run (docs/runs.md); serverless.yml passes its ARN as LOOPS_RUNS_TOPIC."""


def logical_id(queue_key: str) -> str:
    """A CloudFormation logical id piece from a queue key (letters and digits only)."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]", queue_key) if part)


def render(config: Config, *, prefix: str, root: Path) -> dict[str, Any]:
    _check_logical_ids(config)
    resources: dict[str, Any] = {**_shared(prefix)}
    for queue in config.queues.values():
        resources.update(_queue_resources(queue, prefix))
    resources.update(_health_alarms(config, prefix))
    resources.update(alert_resources(config, prefix, logical_id))
    resources.update(dashboard_resources(config, prefix))
    shipped = _shipped_path(Path(config.path), root)
    return {
        "resources": resources,
        "tracing": config.poller.tracing,
        "iam": _iam_statements(config, prefix),
        "config_path": shipped,
        "package_patterns": _package_patterns(config, shipped),
        "poller_timeout_s": config.poller.timeout_s,
    }


def _package_patterns(config: Config, shipped_config: str) -> list[str]:
    """What goes into the zip: our code, the config, and the top-level package (or module) of every
    configured handler, so that adding a queue with a new handler needs no edit of serverless.yml."""
    handlers = [q.handler for q in config.queues.values() if q.handler is not None]
    handler_roots = sorted({h.split(".", 1)[0] for h in handlers} - set(SHIPPED_PACKAGES))
    patterns = ["!**", *(f"{package}/**" for package in SHIPPED_PACKAGES), shipped_config]
    for top in handler_roots:
        patterns += [f"{top}/**", f"{top}.py"]
    return [*patterns, "!**/__pycache__/**", "!**/*.pyc"]


def _check_logical_ids(config: Config) -> None:
    seen: dict[str, str] = {}
    for key in config.queues:
        lid = logical_id(key)
        if lid in seen:
            raise ConfigError(
                f"{config.path}: queues.{key}: its resource names would clash with those of queue {seen[lid]!r}"
                " (keys may not differ only in '-', '_' or the case of a letter after them)"
            )
        seen[lid] = key


def _shipped_path(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise ConfigError(f"{path}: the config file must lie inside the project ({root}) to be shipped") from None


def _shared(prefix: str) -> dict[str, Any]:
    return {
        TABLE: {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "TableName": f"{prefix}-tokens",
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [
                    {"AttributeName": "queue_url", "AttributeType": "S"},
                    {"AttributeName": "token", "AttributeType": "S"},
                ],
                "KeySchema": [
                    {"AttributeName": "queue_url", "KeyType": "HASH"},
                    {"AttributeName": "token", "KeyType": "RANGE"},
                ],
            },
        },
        UP_TOPIC: _topic(f"{prefix}-scale-up"),
        DOWN_TOPIC: _topic(f"{prefix}-scale-down"),
        ALERTS_TOPIC: _topic(f"{prefix}-alerts"),
        RUNS_TOPIC: _topic(f"{prefix}-runs"),
    }


def _topic(name: str) -> dict[str, Any]:
    return {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": name}}


def _queue_metric(metric_id: str, metric: str, queue_name: str) -> dict[str, Any]:
    return {
        "Id": metric_id,
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/SQS",
                "MetricName": metric,
                "Dimensions": [{"Name": "QueueName", "Value": queue_name}],
            },
            "Period": METRIC_PERIOD_S,
            "Stat": "Maximum",
        },
        "ReturnData": False,
    }


def depth_alarm_properties(queue: QueueConfig, name: str, depth: int) -> dict[str, Any]:
    """A depth alarm: visible + in-flight messages (so that busy loops are not scaled in under
    themselves) at or above ``depth`` for one minute. Missing data (an idle queue stops reporting) is OK."""
    return {
        "AlarmName": name,
        "AlarmDescription": f"sqs-loops: queue {queue.key} at {depth} messages or more (visible + in flight)",
        "Metrics": [
            _queue_metric("visible", "ApproximateNumberOfMessagesVisible", queue.queue_name),
            _queue_metric("inflight", "ApproximateNumberOfMessagesNotVisible", queue.queue_name),
            {"Id": "depth", "Expression": "visible + inflight", "Label": "depth", "ReturnData": True},
        ],
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "Threshold": depth,
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "TreatMissingData": "notBreaching",
    }


def _queue_resources(queue: QueueConfig, prefix: str) -> dict[str, Any]:
    lid = logical_id(queue.key)
    out: dict[str, Any] = {}
    for number, (name, step) in enumerate(zip(depth_alarm_names(prefix, queue), queue.scale_steps, strict=True), 1):
        props = depth_alarm_properties(queue, name, step.depth)
        props["AlarmActions"] = [{"Ref": UP_TOPIC}]
        props["OKActions"] = [{"Ref": DOWN_TOPIC}]
        out[f"{lid}DepthAlarm{number}"] = {"Type": "AWS::CloudWatch::Alarm", "Properties": props}
    if queue.create:
        fifo = queue.queue_name.endswith(".fifo")
        dlq_props: dict[str, Any] = {"QueueName": queue.dlq_name, "MessageRetentionPeriod": DLQ_RETENTION_S}
        queue_props: dict[str, Any] = {
            "QueueName": queue.queue_name,
            "VisibilityTimeout": queue.visibility_timeout_s,
            "RedrivePolicy": {
                "deadLetterTargetArn": {"Fn::GetAtt": [f"{lid}DeadLetterQueue", "Arn"]},
                "maxReceiveCount": queue.max_receive_count,
            },
        }
        if fifo:
            dlq_props["FifoQueue"] = queue_props["FifoQueue"] = True
        out[f"{lid}DeadLetterQueue"] = {"Type": "AWS::SQS::Queue", "Properties": dlq_props}
        out[f"{lid}Queue"] = {"Type": "AWS::SQS::Queue", "Properties": queue_props}
    if queue.dlq_name is not None:
        out[f"{lid}DlqAlarm"] = {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmName": f"{prefix}-{queue.key}-dlq-not-empty",
                "AlarmDescription": f"sqs-loops: messages of queue {queue.key} in its dead-letter queue; redrive them once fixed",
                "Namespace": "AWS/SQS",
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [{"Name": "QueueName", "Value": queue.dlq_name}],
                "Statistic": "Maximum",
                "Period": METRIC_PERIOD_S,
                "EvaluationPeriods": 1,
                "Threshold": 1,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "TreatMissingData": "notBreaching",
                "AlarmActions": [{"Ref": ALERTS_TOPIC}],
                "OKActions": [{"Ref": ALERTS_TOPIC}],
            },
        }
    return out


def _health_alarms(config: Config, prefix: str) -> dict[str, Any]:
    """What `recursiveLoop: Allow` silences (RecursiveInvocationsDropped), replaced by our own signals."""
    poller = [{"Name": "FunctionName", "Value": f"{prefix}-poller"}]
    total_max = sum(q.max_loops for q in config.queues.values())
    total_min = sum(q.min_loops for q in config.queues.values())
    alarms: dict[str, Any] = {
        "RevivalsMetricFilter": {
            "Type": "AWS::Logs::MetricFilter",
            "DependsOn": "RestartLogGroup",  # the log group the Serverless Framework makes for `restart`
            "Properties": {
                "LogGroupName": f"/aws/lambda/{prefix}-restart",
                # restart logs one JSON line per revival; a term pattern matches it in any log format.
                "FilterPattern": '"loop_revived"',
                "MetricTransformations": [
                    {"MetricNamespace": f"{NAMESPACE}/{prefix}", "MetricName": "LoopsRevived", "MetricValue": "1"}
                ],
            },
        },
        "LoopsStalledAlarm": _alert(
            f"{prefix}-loops-stalled",
            "sqs-loops: restart had to revive loops (their heartbeats stopped)",
            {"Namespace": f"{NAMESPACE}/{prefix}", "MetricName": "LoopsRevived", "Statistic": "Sum"},
            threshold=1,
            operator="GreaterThanOrEqualToThreshold",
            period=300,
            missing="notBreaching",
        ),
        "RunawayInvocationsAlarm": _alert(
            f"{prefix}-poller-runaway",
            f"sqs-loops: poller invocations far above what {total_max} loops make (a recursion gone wild)",
            {"Namespace": "AWS/Lambda", "MetricName": "Invocations", "Dimensions": poller, "Statistic": "Sum"},
            threshold=total_max * RUNAWAY_INVOCATIONS_PER_LOOP,
            operator="GreaterThanThreshold",
            period=300,
            missing="notBreaching",
        ),
    }
    if total_min:
        # At least min_loops loops always run, each invoking at least once per poller timeout (<= 15 min).
        alarms["PollerSilentAlarm"] = _alert(
            f"{prefix}-poller-silent",
            f"sqs-loops: no poller invocation for 30 minutes although {total_min} loops should always run",
            {"Namespace": "AWS/Lambda", "MetricName": "Invocations", "Dimensions": poller, "Statistic": "Sum"},
            threshold=1,
            operator="LessThanThreshold",
            period=1800,
            missing="breaching",
        )
    return alarms


def _alert(
    name: str, description: str, metric: dict[str, Any], *, threshold: int, operator: str, period: int, missing: str
) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": name,
            "AlarmDescription": description,
            **metric,
            "Period": period,
            "EvaluationPeriods": 1,
            "Threshold": threshold,
            "ComparisonOperator": operator,
            "TreatMissingData": missing,
            "AlarmActions": [{"Ref": ALERTS_TOPIC}],
            "OKActions": [{"Ref": ALERTS_TOPIC}],
        },
    }


def _queue_arn(name_or_url: str) -> Any:
    ref = QueueRef.parse(name_or_url)
    return {SUB: ref.arn_in(partition="${AWS::Partition}", region="${AWS::Region}", account_id="${AWS::AccountId}")}


def _function_arns(name_or_arn: str) -> list[Any]:
    """A forwarding target's ARN, and its qualified versions (an alias or version given, or not)."""
    if name_or_arn.startswith("arn:"):
        base = ":".join(name_or_arn.split(":")[:7])
        return [base, base + ":*"]
    name = name_or_arn.split(":", 1)[0]
    arn = f"arn:${{AWS::Partition}}:lambda:${{AWS::Region}}:${{AWS::AccountId}}:function:{name}"
    return [{SUB: arn}, {SUB: arn + ":*"}]


def _iam_statements(config: Config, prefix: str) -> list[dict[str, Any]]:
    queues = [_queue_arn(q.queue) for q in config.queues.values()]
    dlqs = [_queue_arn(q.dlq or q.dlq_name) for q in config.queues.values() if q.dlq_name is not None]
    function = f"arn:${{AWS::Partition}}:lambda:${{AWS::Region}}:${{AWS::AccountId}}:function:{prefix}-poller"
    # Loops ask scale_up for growth (docs/scaling.md#two-paths); restart reads every queue's depth with
    # the sqs:GetQueueAttributes below.
    scale_up = f"arn:${{AWS::Partition}}:lambda:${{AWS::Region}}:${{AWS::AccountId}}:function:{prefix}-scaleUp"
    targets: list[Any] = []  # forwarding targets (function: in the config), each once
    for queue in config.queues.values():
        targets += [arn for arn in _function_arns(queue.function or "") if queue.function and arn not in targets]
    return [
        {
            "Effect": "Allow",
            "Action": [
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:Query",
                "dynamodb:Scan",
            ],
            "Resource": [{"Fn::GetAtt": [TABLE, "Arn"]}],
        },
        {
            "Effect": "Allow",
            "Action": [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
                "sqs:GetQueueUrl",
            ],
            "Resource": queues,
        },
        *([{"Effect": "Allow", "Action": ["sqs:GetQueueAttributes"], "Resource": dlqs}] if dlqs else []),
        {
            "Effect": "Allow",
            "Action": ["lambda:InvokeFunction"],
            "Resource": [{SUB: function}, {SUB: function + ":*"}, {SUB: scale_up}, *targets],
        },
        {"Effect": "Allow", "Action": ["sns:Publish"], "Resource": [{"Ref": RUNS_TOPIC}]},
        {
            "Effect": "Allow",
            "Action": ["cloudwatch:DescribeAlarms"],
            "Resource": [
                {SUB: f"arn:${{AWS::Partition}}:cloudwatch:${{AWS::Region}}:${{AWS::AccountId}}:alarm:{prefix}-*"}
            ],
        },
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.render", description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", required=True, help="LOOPS_PREFIX: <service>-<stage>")
    parser.add_argument("--config", help="config file (default: $SQS_LOOPS_CONFIG, else queues.yml)")
    parser.add_argument("--root", default=".", help="project root the config is shipped from (default: .)")
    args = parser.parse_args(argv)
    try:
        rendered = render(load_config(args.config or config_path()), prefix=args.prefix, root=Path(args.root))
    except ConfigError as exc:
        print(f"sqs-loops config error: {exc}", file=sys.stderr)
        return 2
    json.dump(rendered, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
