"""Create what moto's CloudFormation skipped, from the deployed template itself.

moto's CloudFormation creates the resource types it models and silently skips the others: the stack then
lists them with no logical id and no type. Here each resource of the template that the stack does not list
is created through the service's own API, from the template's properties with their intrinsic functions
resolved against the stack (``Ref``, ``Fn::GetAtt``, ``Fn::Sub``, ``Fn::Join``), never from a second
rendering of the config. What we cannot create is reported, not hidden.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_SUB = re.compile(r"\$\{([^}!][^}]*)\}")


@dataclass
class Resolver:
    """Resolves a template's intrinsic functions against a stack's physical resources."""

    template: Mapping[str, Any]
    physical: Mapping[str, str]  # logical id -> physical id, as the stack lists them
    region: str
    account: str
    arn_of: Callable[[str, str, str], str]  # (resource type, logical id, physical id) -> ARN

    def pseudo(self, name: str) -> str | None:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }.get(name)

    def ref(self, name: str) -> str:
        value = self.pseudo(name)
        if value is not None:
            return value
        if name not in self.physical:
            raise KeyError(f"Ref {name}: the stack has no such resource (moto skipped it?)")
        return self.physical[name]

    def get_att(self, name: str, attribute: str) -> str:
        if attribute != "Arn":
            raise KeyError(f"Fn::GetAtt {name}.{attribute}: only Arn is resolved here")
        kind = self.template["Resources"][name]["Type"]
        return self.arn_of(kind, name, self.ref(name))

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self.ref(argument)
            if key == "Fn::GetAtt":
                name, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.get_att(name, attribute)
            if key == "Fn::Join":
                separator, parts = argument
                return separator.join(str(p) for p in self(parts))
            if key == "Fn::Sub":
                return self._sub(argument)
        return {k: self(v) for k, v in value.items()}

    def _sub(self, argument: Any) -> str:
        text, names = (argument, {}) if isinstance(argument, str) else (argument[0], self(argument[1]))

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in names:
                return str(names[name])
            if "." in name:
                return self.get_att(*name.split(".", 1))
            return self.ref(name)

        return _SUB.sub(one, text)


@dataclass
class FillReport:
    """Logical id -> type of what was filled in, and of what moto skipped that nothing here creates."""

    filled: dict[str, str] = field(default_factory=dict)
    not_filled: dict[str, str] = field(default_factory=dict)
    subscriptions: dict[str, str] = field(default_factory=dict)  # topic name -> subscribed function name


def fill_in(
    template: Mapping[str, Any], physical: Mapping[str, str], resolve: Resolver, clients: Callable[[str], Any]
) -> FillReport:
    """Create every resource of ``template`` the stack does not list (``physical``)."""
    report = FillReport()
    for logical, resource in template["Resources"].items():
        if logical in physical:
            continue
        kind = resource["Type"]
        create = _FILLERS.get(kind)
        if create is None:
            report.not_filled[logical] = kind
            continue
        create(logical, resolve(resource.get("Properties", {})), clients, report)
        report.filled[logical] = kind
    return report


def _alarm(logical: str, props: dict[str, Any], clients: Callable[[str], Any], report: FillReport) -> None:
    cloudwatch = clients("cloudwatch")
    cloudwatch.put_metric_alarm(**props)
    # A new alarm starts in INSUFFICIENT_DATA on AWS; moto starts it in OK.
    cloudwatch.set_alarm_state(AlarmName=props["AlarmName"], StateValue="INSUFFICIENT_DATA", StateReason="new alarm")


def _subscription(logical: str, props: dict[str, Any], clients: Callable[[str], Any], report: FillReport) -> None:
    extra = {k: v for k, v in props.items() if k not in {"TopicArn", "Protocol", "Endpoint"}}
    attributes = {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in extra.items()}
    clients("sns").subscribe(
        TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"], Attributes=attributes
    )
    if props["Protocol"] == "lambda":
        report.subscriptions[props["TopicArn"].rsplit(":", 1)[-1]] = props["Endpoint"].split(":")[6]


def _event_invoke_config(
    logical: str, props: dict[str, Any], clients: Callable[[str], Any], report: FillReport
) -> None:
    keys = ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig")
    clients("lambda").put_function_event_invoke_config(
        FunctionName=props["FunctionName"],
        Qualifier=props.get("Qualifier", "$LATEST"),
        **{k: props[k] for k in keys if k in props},
    )


def _bucket_policy(logical: str, props: dict[str, Any], clients: Callable[[str], Any], report: FillReport) -> None:
    clients("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(props["PolicyDocument"]))


def _metric_filter(logical: str, props: dict[str, Any], clients: Callable[[str], Any], report: FillReport) -> None:
    transformations = [{k[:1].lower() + k[1:]: v for k, v in t.items()} for t in props["MetricTransformations"]]
    clients("logs").put_metric_filter(
        logGroupName=props["LogGroupName"],
        filterName=props.get("FilterName", logical),
        filterPattern=props["FilterPattern"],
        metricTransformations=transformations,
    )


_FILLERS: dict[str, Callable[[str, dict[str, Any], Callable[[str], Any], FillReport], None]] = {
    "AWS::CloudWatch::Alarm": _alarm,
    "AWS::SNS::Subscription": _subscription,
    "AWS::Lambda::EventInvokeConfig": _event_invoke_config,
    "AWS::S3::BucketPolicy": _bucket_policy,
    "AWS::Logs::MetricFilter": _metric_filter,
}
