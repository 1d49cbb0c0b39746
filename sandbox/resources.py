"""Create the deployment's resources in the moto server from the same rendering as the stack
(``scaler.render``): the token table, the topics, every queue the config names (the sandbox stands in for
the whole account, so queues the stack would not create exist here too, each with a DLQ) and the alarms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3

from poller.config import Config
from poller.tokens import bind_token_table
from scaler.render import render

SANDBOX_MAX_RECEIVE_COUNT = 3  # for queues the real stack would not create: poison reaches the DLQ fast


def create_resources(config: Config, *, prefix: str, root: Path, region: str) -> dict[str, str]:
    """Create everything; returns topic name -> ARN."""
    rendered = render(config, prefix=prefix, root=root)["resources"]
    sqs = boto3.client("sqs", region_name=region)
    sns = boto3.client("sns", region_name=region)
    cloudwatch = boto3.client("cloudwatch", region_name=region)
    refs: dict[str, str] = {}
    arns: dict[str, str] = {}
    for logical, resource in rendered.items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::DynamoDB::Table":
            bind_token_table(props["TableName"], region=region).create_table(billing_mode="PAY_PER_REQUEST", wait=True)
        elif resource["Type"] == "AWS::SNS::Topic":
            refs[logical] = sns.create_topic(Name=props["TopicName"])["TopicArn"]
    for queue in config.queues.values():
        dlq_name = queue.dlq_name or f"{queue.queue_name.removesuffix('.fifo')}-dlq" + (
            ".fifo" if queue.queue_name.endswith(".fifo") else ""
        )
        fifo = {"FifoQueue": "true"} if queue.queue_name.endswith(".fifo") else {}
        dlq_url = sqs.create_queue(QueueName=dlq_name, Attributes=fifo)["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        receives = queue.max_receive_count if queue.create else SANDBOX_MAX_RECEIVE_COUNT
        sqs.create_queue(
            QueueName=queue.queue_name,
            Attributes={
                **fifo,
                "VisibilityTimeout": str(queue.visibility_timeout_s),
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": receives}),
            },
        )
        arns[queue.key] = dlq_url
    for resource in rendered.values():
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            cloudwatch.put_metric_alarm(**_resolve(resource["Properties"], refs))
            cloudwatch.set_alarm_state(
                AlarmName=resource["Properties"]["AlarmName"], StateValue="INSUFFICIENT_DATA", StateReason="new alarm"
            )
    return {arn.rsplit(":", 1)[-1]: arn for arn in refs.values()}


def _resolve(value: Any, refs: dict[str, str]) -> Any:
    """Replace ``{"Ref": topic}`` by the topic's ARN, recursively."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return refs[value["Ref"]]
        return {k: _resolve(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, refs) for v in value]
    return value
