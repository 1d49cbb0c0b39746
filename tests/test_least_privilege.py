"""Each function's role allows exactly what its code calls: every AWS operation the four entry points make
on moto (recorded by botocore's hooks, tests/aws_calls.py) is allowed by that function's rendered policy,
and every action that policy grants is one the function's code was seen to make. The same for the
producers' policy and what ``producer.send_messages`` calls."""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import sample_handlers
from aws_calls import Call, Recorder, recording
from conftest import ACCOUNT, REGION, FakeContext, create_function, make_queue, send

import poller.loop.growth
import poller.targets.function
from deploy.iam import ON_BEHALF, PRODUCER, ROLES
from deploy.render import depth_alarm_properties, render
from poller import handler as entry
from poller.config import load_config
from poller.lease.tokens import TokenStore
from poller.runs import RunBook
from producer import queue_url, run_of, send_messages, start_run
from sandbox.lambda_runtime import LocalFunction, LocalLambda
from scaler import handlers
from scaler.alarms.names import depth_alarm_names
from scaler.holds import bind_hold_table
from testing.events import alarm_message, sns_event

PREFIX = "sqs-loops-test"
POLLER = f"{PREFIX}-poller"
SCALE_UP = f"{PREFIX}-scaleUp"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CONFIG = f"""
poller: {{heartbeat_s: 2, lease_margin_s: 1}}
queues:
  orders:
    queue: orders-prod
    dlq: orders-prod-dlq
    handler: sample_handlers.dispatch
    sends_to: [reports]  # its handler sends on (a pipeline's next stage): the poller's SendMessage
    kms_key: {KEY}
    wait_time_s: 1
    handler_timeout_s: 3
    visibility_timeout_s: 3
    retry_backoff: {{base_s: 1, max_s: 2}}
    min_loops: 1
    max_loops: 4
    scale_steps: [{{depth: 5, loops: 3}}]
    scale_in_cooldown_s: 0  # scale-down retires at once: the second scale-up keeps on what it retired
  reports:
    queue: reports-dev
    function: reports-worker
    wait_time_s: 1
    handler_timeout_s: 2
    rate_limit: 5
    min_loops: 1
    max_loops: 1
"""
PLATFORM = {"logs", "xray"}  # what Lambda itself writes with the role: the function's logs and traces
TEMPLATE_VALUES = {"${AWS::Partition}": "aws", "${AWS::Region}": REGION, "${AWS::AccountId}": ACCOUNT}


@pytest.fixture
def stack(sqs: Any, tokens: TokenStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """What the deployment makes, on moto: queues, the table, the runs topic, the poller, the depth alarms
    as rendered, and the functions' environment."""
    config_file = tmp_path / "queues.yml"
    config_file.write_text(CONFIG)
    urls = {"orders": make_queue(sqs, "orders-prod", dlq_after=3), "reports": make_queue(sqs, "reports-dev")}
    topic = boto3.client("sns", region_name=REGION).create_topic(Name=f"{PREFIX}-runs")["TopicArn"]
    create_function(POLLER)
    create_function(SCALE_UP)
    config = load_config(config_file)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    for queue in config.queues.values():
        for name, step in zip(depth_alarm_names(PREFIX, queue), queue.scale_steps, strict=True):
            cloudwatch.put_metric_alarm(**depth_alarm_properties(queue, name, step.depth))
    for name, value in {
        "SQS_LOOPS_CONFIG": str(config_file),
        "LOOPS_TABLE": tokens.model.Meta.table_name,
        "LOOPS_PREFIX": PREFIX,
        "POLLER_FUNCTION": POLLER,
        "SCALE_UP_FUNCTION": SCALE_UP,
        "LOOPS_RUNS_TOPIC": topic,
    }.items():
        monkeypatch.setenv(name, value)
    # bind_hold_table too: a model class bound by an earlier test keeps a client made before the recorder.
    for cached in (entry._config, entry._services, handlers.control_plane, handlers.run_book, bind_hold_table):
        cached.cache_clear()
    worker = LocalLambda(functions={"reports-worker": LocalFunction("reports-worker", "sample_handlers.dispatch", 5)})
    endpoint = worker.start()
    poller.targets.function.sync_lambda_client.cache_clear()
    yield {
        "root": tmp_path,
        "config": config,
        "urls": urls,
        "topic": topic,
        "worker": endpoint,
        "table": tokens.model.Meta.table_name,
    }
    worker.stop()
    poller.targets.function.sync_lambda_client.cache_clear()
    for cached in (entry._config, entry._services, handlers.control_plane, handlers.run_book, bind_hold_table):
        cached.cache_clear()


def _step(url: str, token: str) -> dict[str, Any]:
    return {"queue_url": url, "token": token, "loop_id": "L1", "generation": 0}


def _exercise(stack: dict[str, Any], tokens: TokenStore, sqs: Any, recorder: Recorder, monkeypatch: Any) -> None:
    """Every entry point through the paths that call AWS: a loop step (a run, a slow record whose visibility
    is extended, a failed one given back after its backoff, a function target, the recursion), scale-up and
    scale-down on the rendered alarm, and restart reviving a dead loop and republishing a run's notice."""
    orders, reports = stack["urls"]["orders"], stack["urls"]["reports"]
    book = RunBook.from_environment(REGION)
    with recorder.as_function(PRODUCER):  # a producer's own code: sending into a run
        producer_sqs = boto3.client("sqs", region_name=REGION)
        send_messages(producer_sqs, orders, ["fast", "slow"], run=start_run("nightly", book=book), book=book)
    send(sqs, orders, ["bad"])
    send(sqs, reports, ["report"])

    def behave(event: dict[str, Any], context: Any) -> Any:
        if any(r["body"] == "slow" for r in event["Records"]):
            time.sleep(1.6)  # over a third of the visibility timeout: the keeper extends it
        for record in (r for r in event["Records"] if r["body"] == "fast"):  # the next stage, in the same run
            send_messages(sqs_of_handler, queue_url("reports", context), ["next stage"], run=run_of(record))
        return {
            "batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "bad"]
        }

    sqs_of_handler = boto3.client("sqs", region_name=REGION)  # made here: the recorder sees it as the poller's
    sample_handlers.use(behave)
    tokens.create(orders, "slot-0001", loop_id="L1", now_ms=int(time.time() * 1000))
    tokens.create(reports, "slot-0001", loop_id="L1", now_ms=int(time.time() * 1000))
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{POLLER}"
    with recorder.as_function("poller"):
        # 1 s of long poll + 3 s of handler budget + 3 s to recurse: 11 s leaves 4 s to start the batch
        # on a loaded machine; the step then polls on until its time is up.
        entry.handler(_step(orders, "slot-0001"), FakeContext(11, arn=arn))
        assert {"bad", "fast", "slow"} <= set(sample_handlers.bodies())  # the paths below need all three
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", stack["worker"])  # the function target's endpoint only
        poller.targets.function.sync_lambda_client(2, REGION)
        monkeypatch.delenv("AWS_ENDPOINT_URL_LAMBDA")
        entry.handler(_step(reports, "slot-0001"), FakeContext(14, arn=arn))
        # The same step delivered twice (async Invoke is at least once): its claim loses and reads why.
        assert entry.handler(_step(orders, "slot-0001"), FakeContext(8, arn=arn))["recursed"] is False
        # A backlog: two full batches, then the depth check (made due at once) asks scale_up for growth.
        monkeypatch.setattr(poller.loop.growth, "GROWTH_CHECK_S", 0.0)
        send(sqs, orders, ["fast"] * 25)
        tokens.create(orders, "slot-0002", loop_id="L2", now_ms=int(time.time() * 1000))
        entry.handler({**_step(orders, "slot-0002"), "loop_id": "L2"}, FakeContext(8, arn=arn))
    assert any(r["body"] == "report" for r in sample_handlers.seen)

    def alarm_moves(new: str, old: str) -> dict[str, Any]:
        """The rendered depth alarm of orders moves to ``new``: the SNS notification CloudWatch sends."""
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        name = f"{PREFIX}-orders-depth-1"
        cloudwatch.set_alarm_state(AlarmName=name, StateValue=new, StateReason="test")
        alarm = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
        topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:{PREFIX}-scale-{'up' if new == 'ALARM' else 'down'}"
        handlers.control_plane.cache_clear()
        return sns_event([alarm_message(alarm, new_state=new, old_state=old)], topic_arn=topic)

    for function, new, old in (("scaleUp", "ALARM", "OK"), ("scaleDown", "OK", "ALARM"), ("scaleUp", "ALARM", "OK")):
        notification = alarm_moves(new, old)  # the second scale-up keeps on the loops scale-down retired
        with recorder.as_function(function):
            getattr(handlers, "scale_up" if function == "scaleUp" else "scale_down")(notification, FakeContext(30))
    alarm_moves("OK", "ALARM")
    tokens.create(orders, "slot-0009", loop_id="dead", now_ms=0)  # a heartbeat long stopped
    book.table.create("lost", now_ms=0)  # a run claimed finished whose notice never went out
    assert book.table.claim_finish(book.table.get("lost"), now_ms=0)  # type: ignore[arg-type]
    tokens.release(reports, "slot-0001")  # a row gone by hand: restart starts a loop in its place

    def heartbeat_first(action: str, params: dict[str, Any]) -> bool:
        """The loop of orders' slot-0001 heartbeats just before restart's takeover of it lands."""
        if action != "dynamodb:UpdateItem" or params.get("Key", {}).get("token") != {"S": "slot-0001"}:
            return False
        row = tokens.get(orders, "slot-0001")
        assert row is not None
        tokens.heartbeat(
            orders, "slot-0001", loop_id=row.loop_id, generation=row.generation, now_ms=int(time.time() * 1000)
        )
        return True

    recorder.before.append(heartbeat_first)
    restart_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{PREFIX}-restart"
    with recorder.as_function("restart"):
        handlers.restart({"source": "aws.events"}, FakeContext(30, arn=restart_arn))


def _resources(statement: dict[str, Any], stack: dict[str, Any]) -> list[str]:
    """A statement's resources as ARNs on moto: the template's pseudo parameters and our Refs resolved."""
    out = []
    for resource in statement["Resource"]:
        if isinstance(resource, dict) and "Fn::Sub" in resource:
            resource = resource["Fn::Sub"]
            for name, value in TEMPLATE_VALUES.items():
                resource = resource.replace(name, value)
        elif resource == {"Fn::GetAtt": ["TokenTable", "Arn"]}:
            resource = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{stack['table']}"
        elif resource == {"Ref": "RunsTopic"}:
            resource = stack["topic"]
        out.append(str(resource))
    return out


def _arn_of(call: Call) -> str:
    """The ARN a call acts on, from what it named."""
    service, _ = call.action.split(":")
    named = call.resource
    if named.startswith("arn:"):
        return named
    if service == "sqs":
        return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{named.rsplit('/', 1)[-1]}"
    if service == "dynamodb":
        return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{named}"
    if service == "lambda":
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{named}"
    if service == "cloudwatch":
        names = json.loads(named.replace("'", '"')) if named.startswith("[") else [named]
        return f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{names[0] if names else ''}"
    return named


def test_each_function_is_allowed_exactly_what_its_code_calls(
    stack: dict[str, Any], tokens: TokenStore, sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with recording(monkeypatch) as recorder:
        _exercise(stack, tokens, sqs, recorder, monkeypatch)
    resources = render(stack["config"], prefix=PREFIX, root=stack["root"])["resources"]
    policies = {
        function: [
            s
            for s in resources[role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            if not all(a.split(":")[0] in PLATFORM for a in s["Action"])
        ]
        for function, role in ROLES.items()
    }
    policies[PRODUCER] = resources["ProducersPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert sorted(policies) == sorted(recorder.calls) == ["poller", "producer", "restart", "scaleDown", "scaleUp"]
    for function, statements in policies.items():
        calls = recorder.calls[function]
        for call in set(calls):
            allowing = [s for s in statements if call.action in s["Action"]]
            assert allowing, (
                f"{function}: its code calls {call.action} on {call.resource}, its policy does not allow it"
            )
            arn = _arn_of(call)
            assert any(fnmatch.fnmatchcase(arn, r) for s in allowing for r in _resources(s, stack)), (
                f"{function}: {call.action} on {arn} is outside the resources its policy names"
            )
        granted = {a for s in statements for a in s["Action"]} - ON_BEHALF
        unused = granted - {c.action for c in calls}
        assert not unused, f"{function}: its policy grants {sorted(unused)}, which its code never called"
    # What SQS asks KMS with the function's rights: the poller decrypts what it receives and encrypts what it
    # sends (to its sends_to, and a given-back copy to its own queue), with that key only.
    kms = {f: [s["Resource"] for s in statements if set(s["Action"]) & ON_BEHALF] for f, statements in policies.items()}
    assert kms == {"poller": [[KEY]], "scaleUp": [], "scaleDown": [], "restart": [], PRODUCER: [[KEY]]}
