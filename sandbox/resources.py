"""Create the deployment's resources in the moto server from the same rendering as the stack
(``deploy.render``): the token table, the topics, the queues and DLQs the stack creates, and the alarms.
Queues the stack expects to exist already are made too (the sandbox stands in for the whole account),
each with a DLQ."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3

from deploy.render import render
from poller.config import Config, QueueConfig
from poller.lease.tokens import bind_token_table

SANDBOX_MAX_RECEIVE_COUNT = 3  # for queues the real stack would not create: poison reaches the DLQ fast


def create_resources(config: Config, *, prefix: str, root: Path, region: str) -> dict[str, str]:
    """Create everything; returns topic name -> ARN."""
    rendered = render(config, prefix=prefix, root=root)["resources"]
    sqs = boto3.client("sqs", region_name=region)
    sns = boto3.client("sns", region_name=region)
    cloudwatch = boto3.client("cloudwatch", region_name=region)
    refs: dict[str, str] = {}
    for logical, resource in rendered.items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::DynamoDB::Table":
            bind_token_table(props["TableName"], region=region).create_table(billing_mode="PAY_PER_REQUEST", wait=True)
        elif resource["Type"] == "AWS::SNS::Topic":
            refs[logical] = sns.create_topic(Name=props["TopicName"])["TopicArn"]
    # Queues the stack creates, as rendered (dead-letter queues first: the others point at them).
    queues = {k: r for k, r in rendered.items() if r["Type"] == "AWS::SQS::Queue"}
    for logical in sorted(queues, key=lambda k: "RedrivePolicy" in queues[k]["Properties"]):
        props = dict(queues[logical]["Properties"])
        name = props.pop("QueueName")
        redrive = props.pop("RedrivePolicy", None)
        attributes = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in props.items()}
        if redrive is not None:
            target = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
            policy = {"deadLetterTargetArn": refs[target], "maxReceiveCount": redrive["maxReceiveCount"]}
            attributes["RedrivePolicy"] = json.dumps(policy)
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        refs[logical] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    create_existing_queues(config, region=region)
    for resource in rendered.values():
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            cloudwatch.put_metric_alarm(**_resolve(resource["Properties"], refs))
            cloudwatch.set_alarm_state(
                AlarmName=resource["Properties"]["AlarmName"], StateValue="INSUFFICIENT_DATA", StateReason="new alarm"
            )
    return {arn.rsplit(":", 1)[-1]: arn for arn in refs.values() if ":sns:" in arn}


def create_existing_queues(config: Config, *, region: str) -> None:
    """Queues the stack expects to exist already: the sandbox stands in for the account that has them."""
    sqs = boto3.client("sqs", region_name=region)
    for queue in config.queues.values():
        if not queue.create:
            _existing_queue(sqs, queue)


def _existing_queue(sqs: Any, queue: QueueConfig) -> None:
    """A queue the stack does not create, with a DLQ so that poison messages have somewhere to go."""
    fifo = queue.queue_name.endswith(".fifo")
    dlq_name = queue.dlq_name or queue.stack_dlq_name
    flags = {"FifoQueue": "true"} if fifo else {}
    dlq_url = sqs.create_queue(QueueName=dlq_name, Attributes=flags)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": SANDBOX_MAX_RECEIVE_COUNT}
    sqs.create_queue(
        QueueName=queue.queue_name,
        Attributes={**flags, "VisibilityTimeout": str(queue.visibility_timeout_s), "RedrivePolicy": json.dumps(policy)},
    )


def _resolve(value: Any, refs: dict[str, str]) -> Any:
    """Replace ``{"Ref": topic}`` by the topic's ARN, recursively."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return refs[value["Ref"]]
        return {k: _resolve(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, refs) for v in value]
    return value
