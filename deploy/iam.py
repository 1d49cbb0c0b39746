"""IAM of the stack: one role per function, each allowed only what that function's code calls
(tests/test_least_privilege.py records every call and checks it against these), and the managed policy
producers attach to send into the configured queues.

A function's permissions are a list of :func:`allow` lines in :func:`function_statements`: adding what a
function's code now calls is one line there."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from poller.aws.arn import Arn
from poller.config import Config
from poller.runs import RUNS_PARTITION
from poller.sqs.queue_ref import QueueRef

SUB = "Fn::Sub"
TABLE = "TokenTable"
RUNS_TOPIC = "RunsTopic"
PRODUCER = "producer"
"""The key the producers' policy is checked under (tests/test_least_privilege.py), beside the functions'."""
ROLES = {"poller": "PollerRole", "scaleUp": "ScaleUpRole", "scaleDown": "ScaleDownRole", "restart": "RestartRole"}
"""serverless.yml's function keys and their roles' logical ids."""


def role_arns() -> dict[str, Any]:
    """serverless.yml's ``role:`` of each function. ``Fn::Sub`` rather than a logical id: the Framework then
    adds no DependsOn on top of the reference (which cfn-lint flags as redundant)."""
    return {function: {SUB: f"${{{role}.Arn}}"} for function, role in ROLES.items()}


PRODUCERS_POLICY = "ProducersPolicy"

ON_BEHALF = frozenset({"kms:Decrypt", "kms:GenerateDataKey"})
"""Actions no code of ours calls: SQS calls KMS with the caller's permissions when it hands out (Decrypt) or
stores (GenerateDataKey) a message of a queue encrypted with a customer-managed key."""
_HERE = "${AWS::Partition}:{service}:${AWS::Region}:${AWS::AccountId}"


def allow(actions: list[str], resources: list[Any], condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": actions, "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def _here(service: str, resource: str) -> dict[str, str]:
    return {SUB: f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}"}


def function_statements(config: Config, prefix: str) -> dict[str, list[dict[str, Any]]]:
    """What each function's code calls (log and trace permissions come on top, in :func:`role_resources`)."""
    table = [{"Fn::GetAtt": [TABLE, "Arn"]}]
    queues = [_queue_arn(q.ref) for q in config.queues.values()]
    poller = [_here("lambda", f"function:{prefix}-poller"), _here("lambda", f"function:{prefix}-poller:*")]
    alarms = [_here("cloudwatch", f"alarm:{prefix}-*")]
    targets: list[Any] = []  # forwarding targets (function: in the config), each once
    for queue in config.queues.values():
        targets += [arn for arn in _function_arns(queue.function or "") if queue.function and arn not in targets]
    reads = ["dynamodb:GetItem", "dynamodb:Query"]  # a queue's rows, its override (pin, pause)
    depth = allow(["sqs:GetQueueAttributes"], queues)  # depth reads (docs/scaling.md#two-paths)
    scale_up = [_here("lambda", f"function:{prefix}-scaleUp")]  # loops ask it for growth
    # The queues the handlers send to (``sends_to``: a pipeline's next stages; the runs' counts of what they
    # send are the poller's table writes already, the queues' size limit its depth reads), and each standard
    # queue itself: a message given back on its last receive is sent again as a copy (poller/loop/give_back.py).
    standard = {key for key, q in config.queues.items() if not q.ref.fifo}
    sent_to = sorted(standard | {k for q in config.queues.values() for k in q.sends_to})
    sends = [allow(["sqs:SendMessage"], [_queue_arn(config.queues[k].ref) for k in sent_to])] if sent_to else []
    return {
        "poller": [
            # PutItem: a downstream's state row, made by the first loop that needs it (poller/downstream/state.py)
            allow(["dynamodb:UpdateItem", "dynamodb:Query", "dynamodb:GetItem", "dynamodb:PutItem"], table),
            allow(["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"], queues),
            allow(["lambda:InvokeFunction"], poller + targets + scale_up),
            allow(["sns:Publish"], [{"Ref": RUNS_TOPIC}]),
            depth,
            *sends,
            *_kms(config, ["kms:Decrypt", "kms:GenerateDataKey"], only=sent_to),
            *_kms(config, ["kms:Decrypt"], only=[k for k in config.queues if k not in sent_to]),
        ],
        "scaleUp": [
            allow([*reads, "dynamodb:PutItem", "dynamodb:UpdateItem"], table),  # start, or keep on a retiring loop
            allow(["cloudwatch:DescribeAlarms"], alarms),
            allow(["lambda:InvokeFunction"], poller),
            depth,
        ],
        "scaleDown": [
            allow([*reads, "dynamodb:PutItem", "dynamodb:UpdateItem"], table),  # retire; the cool-down's row
            allow(["cloudwatch:DescribeAlarms"], alarms),
            depth,
        ],
        "restart": [
            allow([*reads, "dynamodb:Scan", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"], table),
            allow(["cloudwatch:DescribeAlarms"], alarms),
            allow(["lambda:InvokeFunction"], poller),
            allow(["sns:Publish"], [{"Ref": RUNS_TOPIC}]),
            depth,
        ],
    }


def _kms(config: Config, actions: list[str], only: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """``actions`` on each queue's ``kms_key`` (of the queue keys ``only``, or all): the key itself, or for an
    alias ARN the keys of that account and region that carry the alias (KMS authorises a key, never an
    alias: kms:ResourceAliases)."""
    queues = config.queues.values() if only is None else [config.queues[k] for k in only]
    keys = sorted({q.kms_key for q in queues if q.kms_key})
    out = []
    if direct := [k for k in keys if ":key/" in k]:
        out.append(allow(actions, list(direct)))
    for alias in (k for k in keys if ":alias/" in k):
        arn = Arn.parse(alias)
        assert arn is not None  # the config checked it
        keys_there = f"arn:{arn.partition}:kms:{arn.region}:{arn.account}:key/*"
        out.append(allow(actions, [keys_there], {"ForAnyValue:StringEquals": {"kms:ResourceAliases": arn.resource}}))
    return out


def _queue_arn(ref: QueueRef) -> Any:
    return {SUB: ref.arn_in(partition="${AWS::Partition}", region="${AWS::Region}", account_id="${AWS::AccountId}")}


def _function_arns(name_or_arn: str) -> list[Any]:
    """A forwarding target's ARN, and its qualified versions (an alias or version given, or not)."""
    if name_or_arn.startswith("arn:"):
        base = ":".join(name_or_arn.split(":")[:7])
        return [base, base + ":*"]
    name = name_or_arn.split(":", 1)[0]
    return [_here("lambda", f"function:{name}"), _here("lambda", f"function:{name}:*")]


def role_resources(config: Config, prefix: str, names: dict[str, str]) -> dict[str, Any]:
    """One AWS::IAM::Role per function: its code's statements, writing to its own log group, and X-Ray's
    two actions (which take no resource) when ``poller.tracing`` is on. ``names``: function key -> name."""
    out: dict[str, Any] = {}
    for function, statements in function_statements(config, prefix).items():
        group = f"log-group:/aws/lambda/{names[function]}"
        platform = [allow(["logs:CreateLogStream", "logs:PutLogEvents"], [_here("logs", f"{group}:*")])]
        if config.poller.tracing:
            platform.append(allow(["xray:PutTraceSegments", "xray:PutTelemetryRecords"], ["*"]))
        out[ROLES[function]] = {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            # Lambda's service principal is this name in every partition (China's too),
                            # so it is not built from ${AWS::URLSuffix}.
                            "Principal": {"Service": ["lambda.amazonaws.com"]},
                            "Action": ["sts:AssumeRole"],
                        }
                    ],
                },
                "Policies": [
                    {
                        "PolicyName": f"{prefix}-{function}",
                        "PolicyDocument": {"Version": "2012-10-17", "Statement": [*platform, *statements]},
                    }
                ],
            },
        }
    out[PRODUCERS_POLICY] = _producers_policy(config, prefix)
    return out


def producer_statements(config: Config) -> list[dict[str, Any]]:
    """What ``producer.send_messages`` (and ``start_run``) calls: the queue's size limit and the send, on
    the configured queues; a run's row, in the runs' partition of the table only (``dynamodb:LeadingKeys``)."""
    queues = [_queue_arn(q.ref) for q in config.queues.values()]
    runs_only = {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [RUNS_PARTITION]}}
    return [
        allow(["sqs:GetQueueAttributes", "sqs:SendMessage"], queues),
        allow(["dynamodb:PutItem", "dynamodb:UpdateItem"], [{"Fn::GetAtt": [TABLE, "Arn"]}], runs_only),
        *_kms(config, ["kms:GenerateDataKey", "kms:Decrypt"]),
    ]


def _producers_policy(config: Config, prefix: str) -> dict[str, Any]:
    """What a producer needs; attach it to the role of whatever sends work (a handler's own function, a
    scheduled job). Output: ProducersPolicyArn."""
    statements = producer_statements(config)
    return {
        "Type": "AWS::IAM::ManagedPolicy",
        "Properties": {
            "Description": f"sqs-loops {prefix}: send into the configured queues",
            "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
        },
    }
