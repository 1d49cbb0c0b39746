"""A control plane on moto: two queues with the depth alarms the stack renders, the token table, and a
recording invoker in place of Lambda's async Invoke."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from conftest import ACCOUNT, REGION, RecordingInvoker

from deploy.render import depth_alarm_properties
from poller.clock import SYSTEM_CLOCK, Clock
from poller.config import Config, parse_config
from poller.downstream.state import DynamoSharedStore
from poller.lease.tokens import TokenState, TokenStore
from scaler.alarms.names import depth_alarm_names
from scaler.alarms.states import AlarmStates
from scaler.control import ControlPlane
from scaler.depth import QueueDepths
from scaler.holds import HoldStore, bind_hold_table
from scaler.overrides import OverrideStore, bind_override_table
from scaler.reconcile import Reconciler
from testing.events import alarm_message, sns_event

PREFIX = "sqs-loops-test"
POLLER = "sqs-loops-test-poller"
UP_TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:{PREFIX}-scale-up"
DOWN_TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:{PREFIX}-scale-down"

CONFIG = """
poller: {heartbeat_s: 30}
queues:
  orders:
    queue: orders-prod
    handler: app.orders.handle
    min_loops: 1
    max_loops: 6
    scale_steps:
      - {depth: 100, loops: 2}
      - {depth: 1000, loops: 4}
  billing:
    queue: https://sqs.us-east-1.amazonaws.com/123456789012/billing
    handler: app.billing.handle
    min_loops: 0
    max_loops: 3
    scale_steps:
      - {depth: 10, loops: 3}
"""


def url_of(key: str) -> str:
    return {
        "orders": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/orders-prod",
        "billing": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/billing",
        "emails": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/emails",
    }[key]


def put_depth_alarms(cloudwatch: Any, config: Config, prefix: str = PREFIX) -> None:
    """The depth alarms the stack renders (deploy/render.py), put into moto as CloudFormation would make
    them; only the topics' Refs are replaced by the topics' ARNs."""
    for queue in config.queues.values():
        for name, step in zip(depth_alarm_names(prefix, queue), queue.scale_steps, strict=True):
            props = depth_alarm_properties(queue, name, step.depth)
            cloudwatch.put_metric_alarm(**props, AlarmActions=[UP_TOPIC], OKActions=[DOWN_TOPIC])


@dataclass
class PlaneRig:
    plane: ControlPlane
    cloudwatch: Any
    tokens: TokenStore
    overrides: OverrideStore
    invoker: RecordingInvoker
    config: Config

    def alarm(self, name: str) -> dict[str, Any]:
        alarm: dict[str, Any] = self.cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
        return alarm

    def set_state(self, name: str, state: str) -> None:
        self.cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason="test")

    def notify(self, name: str, new: str, old: str, *, at: datetime | None = None) -> dict[str, Any]:
        """Set the alarm's state as CloudWatch would, and build the SNS notification it sends."""
        self.set_state(name, new)
        message = alarm_message(
            self.alarm(name), new_state=new, old_state=old, at=at or datetime.now(UTC) + timedelta(milliseconds=1)
        )
        return sns_event([message], topic_arn=UP_TOPIC if new == "ALARM" else DOWN_TOPIC)

    def rows(self, key: str) -> list[TokenState]:
        return sorted(self.tokens.tokens_of(url_of(key)), key=lambda r: r.token)

    def live(self, key: str) -> list[str]:
        return [r.token for r in self.rows(key) if not r.retiring]


def build_plane(
    tokens: TokenStore, clock: Clock = SYSTEM_CLOCK, config_text: str = CONFIG, *, reads: bool = False
) -> PlaneRig:
    """``reads``: the control plane reads depths (from real moto queues it creates) and keeps cool-downs;
    without, the alarm-only path with no cool-down."""
    config = parse_config(config_text, source="scaler-test.yml")
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    put_depth_alarms(cloudwatch, config)
    for queue in config.queues.values():
        for name in depth_alarm_names(PREFIX, queue):  # real alarms start here, not in moto's OK
            cloudwatch.set_alarm_state(AlarmName=name, StateValue="INSUFFICIENT_DATA", StateReason="new")
    invoker = RecordingInvoker()
    overrides = OverrideStore(bind_override_table(tokens.model.Meta.table_name, region=REGION))
    plane = ControlPlane(
        config=config,
        prefix=PREFIX,
        tokens=tokens,
        alarms=AlarmStates(cloudwatch, PREFIX),
        overrides=overrides,
        reconciler=Reconciler(tokens, invoker, POLLER, clock),
        depths=QueueDepths(boto3.client("sqs", region_name=REGION)) if reads else None,
        holds=HoldStore(bind_hold_table(tokens.model.Meta.table_name, region=REGION)) if reads else None,
        # shared downstreams' state rows (the limit cap's shares), as scaler.handlers builds them
        shares=DynamoSharedStore(boto3.client("dynamodb", region_name=REGION), tokens.model.Meta.table_name)
        if reads
        else None,
    )
    if reads:
        sqs = boto3.client("sqs", region_name=REGION)
        for queue in config.queues.values():
            sqs.create_queue(QueueName=queue.queue_name)
    return PlaneRig(plane, cloudwatch, tokens, overrides, invoker, config)
