"""`sqs-loops sandbox --deployed`: a real `serverless deploy --stage local` of serverless.yml into the
sandbox's moto server, what moto's CloudFormation skipped filled in from the deployed template, and a short
burst run through the functions as deployed, from their package. Needs `npm ci` (make test runs it); the
deploy takes about 30 s, the burst a few seconds."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import one_serverless_at_a_time

from poller.logs import LOGGER
from sandbox.environment import Sandbox
from sandbox.faults import FaultPlan
from sandbox.lambda_runtime import LocalFunction
from sandbox.stack_fill import Resolver, fill_in

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path("tests/fixtures/deployed-queues.yml")
STACK = "sqs-loops-local"
BURST = 30
DRAIN_LIMIT_S = 60.0  # the burst drains in a few seconds; this bounds a broken run, it is no timing assert


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = json.loads(record.getMessage())
        except ValueError:
            return
        with self._lock:
            self.lines.append(line)

    def of(self, event: str) -> list[dict[str, Any]]:
        with self._lock:
            return [line for line in self.lines if line.get("event") == event]


def client(box: Sandbox, service: str, endpoint_url: str | None = None) -> Any:
    """The autouse aws_env fixture unsets AWS_ENDPOINT_URL in every test: name the sandbox's endpoint."""
    return boto3.client(service, region_name=box.region, endpoint_url=endpoint_url or box.endpoint_url)


@pytest.fixture(scope="module")
def lines() -> Iterator[Lines]:
    handler = Lines()
    LOGGER.addHandler(handler)
    saved = LOGGER.level
    LOGGER.setLevel(logging.INFO)
    yield handler
    LOGGER.removeHandler(handler)
    LOGGER.setLevel(saved)


@pytest.fixture(scope="module")
def box(lines: Lines) -> Iterator[Sandbox]:
    if not (ROOT / "node_modules" / ".bin" / "serverless").exists():
        pytest.fail("node_modules/.bin/serverless is missing: run `npm ci` (make test does)")
    with one_serverless_at_a_time(), Sandbox(FIXTURE, root=ROOT, deployed=True) as sandbox:
        yield sandbox


def test_the_stack_is_deployed_and_what_moto_skipped_is_filled_in_from_it(box: Sandbox) -> None:
    deployment = box.deployment
    assert deployment is not None and deployment.stack == STACK and box.prefix == STACK
    assert deployment.fill.not_filled == {}
    filled = deployment.fill.filled
    assert filled["JobsDepthAlarm1"] == "AWS::CloudWatch::Alarm"
    assert filled["PollerEventInvokeConfig"] == "AWS::Lambda::EventInvokeConfig"  # deploy/functions.py
    assert "AWS::SNS::Subscription" in filled.values() and "AWS::Logs::MetricFilter" in filled.values()
    # What was filled in is what the template says, resolved against the stack.
    cloudwatch = client(box, "cloudwatch")
    alarm = cloudwatch.describe_alarms(AlarmNames=[f"{STACK}-jobs-depth-1"])["MetricAlarms"][0]
    assert alarm["Threshold"] == 20 and alarm["StateValue"] == "INSUFFICIENT_DATA"
    assert alarm["AlarmActions"] == [f"arn:aws:sns:{box.region}:{box.account}:{STACK}-scale-up"]
    sns = client(box, "sns")
    topic = f"arn:aws:sns:{box.region}:{box.account}:{STACK}-scale-up"
    endpoints = [s["Endpoint"] for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]]
    assert endpoints == [f"arn:aws:lambda:{box.region}:{box.account}:function:{STACK}-scaleUp"]
    lambda_ = client(box, "lambda")  # moto's Lambda, not the local runtime
    invoke_config = lambda_.get_function_event_invoke_config(FunctionName=f"{STACK}-poller")
    assert invoke_config["MaximumRetryAttempts"] == 0
    assert 60 <= invoke_config["MaximumEventAgeInSeconds"] < 21600  # not Lambda's 6 hours
    # The functions as deployed: handler, timeout and environment come from moto's Lambda.
    poller = deployment.functions[f"{STACK}-poller"]
    assert (poller.handler, poller.timeout_s) == ("poller.handler.handler", 15.0)
    assert poller.environment == {
        "LOOPS_TABLE": f"{STACK}-tokens",
        "POLLER_FUNCTION": f"{STACK}-poller",
        "SCALE_UP_FUNCTION": f"{STACK}-scaleUp",  # loops ask it for growth (docs/scaling.md)
        "LOOPS_PREFIX": STACK,
        "SQS_LOOPS_CONFIG": FIXTURE.as_posix(),
        "LOOPS_RUNS_TOPIC": f"arn:aws:sns:{box.region}:{box.account}:{STACK}-runs",  # the runs' notices
    }
    assert (poller.task_dir / "poller" / "handler.py").exists() and not (poller.task_dir / "sandbox").exists()


def test_a_burst_runs_through_the_functions_from_their_deployed_package(box: Sandbox, lines: Lines) -> None:
    sqs = client(box, "sqs")
    url = box.queue_url("jobs")
    for start in range(0, BURST, 10):
        entries = [{"Id": str(n), "MessageBody": json.dumps({"n": start + n})} for n in range(10)]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    box.run_restart()  # the schedule's first run: min_loops loops on every queue
    end = time.monotonic() + DRAIN_LIMIT_S
    while time.monotonic() < end:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        if attributes["ApproximateNumberOfMessages"] == attributes["ApproximateNumberOfMessagesNotVisible"] == "0":
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the burst was not drained in {DRAIN_LIMIT_S:.0f} s: {attributes}")
    batches = [line for line in lines.of("batch") if line.get("queue") == "jobs"]
    assert sum(line["succeeded"] for line in batches) >= BURST
    dlq = sqs.get_queue_url(QueueName="deployed-jobs-dlq")["QueueUrl"]
    assert (
        sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"]["ApproximateNumberOfMessages"]
        == "0"
    )
    # The loop and restart ran in containers from the package, on nothing of the working tree.
    assert box.runtime.containers is not None
    for name in (f"{STACK}-poller", f"{STACK}-restart"):
        ready = box.runtime.containers.first_ready[name]
        task_dir = box.deployment.functions[name].task_dir if box.deployment else Path("/nowhere")
        assert Path(ready["handler_file"]).is_relative_to(task_dir), ready
        assert not any(Path(p).is_relative_to(ROOT) for p in ready["sys_path"]), ready["sys_path"]
        assert ready["init_error"] is None
        # Compiled modules built for arm64 do not load here: each has a pure-Python twin that ran instead,
        # or is PyYAML's optional libyaml binding (yaml.safe_load is pure Python on AWS too).
        for compiled in ready["unloadable"]:
            twin = task_dir / (compiled.split(".", 1)[0] + ".py")
            assert twin.exists() or compiled.startswith("yaml/_yaml."), compiled


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        # in the working tree, not in the package: found here only if the isolation leaked
        (
            "sandbox.demo.handlers.send_email",
            "Runtime.ImportModuleError",
            "Unable to import module 'sandbox.demo.handlers': No module named 'sandbox'",
        ),
        ("scaler.handlers.no_such", "Runtime.HandlerNotFound", "Handler 'no_such' missing on module 'scaler.handlers'"),
    ],
)
def test_a_handler_the_package_lacks_fails_as_on_aws(box: Sandbox, handler: str, error_type: str, message: str) -> None:
    assert box.deployment is not None
    package = dataclasses.replace(
        box.deployment.functions[f"{STACK}-restart"], name=f"{STACK}-" + handler.replace(".", "-"), handler=handler
    )
    box.runtime.functions[package.name] = LocalFunction(package.name, handler, package.timeout_s, package=package)
    lambda_ = client(box, "lambda", os.environ["AWS_ENDPOINT_URL_LAMBDA"])  # the local runtime's Invoke API
    answer = lambda_.invoke(FunctionName=package.name, Payload=b"{}")
    assert answer["FunctionError"] == "Unhandled"
    error = json.loads(answer["Payload"].read())
    assert (error["errorType"], error["errorMessage"]) == (error_type, message)


def test_faults_that_hook_this_process_are_refused_with_deployed() -> None:
    with pytest.raises(ValueError, match="--faults throttle: not with --deployed"):
        Sandbox(FIXTURE, root=ROOT, deployed=True, faults=FaultPlan({"throttle": 0.1, "duplicate": 0.1}))


def test_the_resolver_and_what_cannot_be_filled_in() -> None:
    template = {
        "Resources": {
            "Fn": {"Type": "AWS::Lambda::Function"},
            "Topic": {"Type": "AWS::SNS::Topic"},
            "Odd": {"Type": "AWS::Some::Thing", "Properties": {}},
        }
    }
    resolve = Resolver(
        template,
        {"Fn": "my-fn", "Topic": "arn:aws:sns:r:1:t"},
        "r",
        "1",
        lambda kind, logical, physical: f"arn:{kind}:{physical}",
    )
    assert resolve({"Fn::Sub": "arn:${AWS::Partition}:x:${AWS::Region}:${Fn}/${Fn.Arn}"}) == (
        "arn:aws:x:r:my-fn/arn:AWS::Lambda::Function:my-fn"
    )
    assert resolve({"Fn::Join": ["-", [{"Ref": "Topic"}, "b"]]}) == "arn:aws:sns:r:1:t-b"
    with pytest.raises(KeyError, match="Ref Gone"):
        resolve({"Ref": "Gone"})
    report = fill_in(template, {"Fn": "my-fn", "Topic": "t"}, resolve, lambda service: None)
    assert report.not_filled == {"Odd": "AWS::Some::Thing"} and report.filled == {}
