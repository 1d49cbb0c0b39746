"""`serverless package` (osls) of serverless.yml with a multi-queue config, checked on the generated
CloudFormation and by cfn-lint. Needs `npm ci` (make test runs it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import one_serverless_at_a_time

from deploy.artifact import runtime_python
from deploy.packaging import SHIPPED_PACKAGES

ROOT = Path(__file__).resolve().parents[1]
SERVERLESS = ROOT / "node_modules" / ".bin" / "serverless"
FIXTURE = "tests/fixtures/deploy-queues.yml"
PREFIX = "sqs-loops-ci"
XRAY_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


# osls stages every package in the repository's own .serverless/ (requirements, zip, templates), even
# with --package, and deletes it once the files are moved out: two packages at once break each other.
# So this module's tests run in one process (`--dist loadfile` in pyproject.toml), and take turns with
# tests/test_deployed.py's deploy on a lock (conftest.one_serverless_at_a_time).
def package(config: str, out: Path) -> subprocess.CompletedProcess[str]:
    if not SERVERLESS.exists():
        pytest.fail("node_modules/.bin/serverless is missing: run `npm ci` (make test does)")
    env = {**os.environ, "SQS_LOOPS_CONFIG": config}
    with one_serverless_at_a_time():
        return subprocess.run(
            [str(SERVERLESS), "package", "--stage", "ci", "--region", "us-east-1", "--package", str(out)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("package")
    result = package(FIXTURE, out)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.fixture(scope="module")
def resources(packaged: Path) -> dict[str, Any]:
    template = json.loads((packaged / "cloudformation-template-update-stack.json").read_text())
    return dict(template["Resources"])


def props(resources: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(resources[name]["Properties"])


def test_every_scale_step_has_its_alarm(resources: dict[str, Any]) -> None:
    alarms = {
        p["AlarmName"]: p
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        for p in [r["Properties"]]
    }
    depth = {name: p for name, p in alarms.items() if "-depth-" in name}
    assert sorted(depth) == [f"{PREFIX}-billing-depth-1"] + [f"{PREFIX}-orders-depth-{n}" for n in (1, 2, 3)]
    assert [depth[f"{PREFIX}-orders-depth-{n}"]["Threshold"] for n in (1, 2, 3)] == [100, 1000, 5000]
    for alarm in depth.values():
        assert alarm["AlarmActions"] == [{"Ref": "ScaleUpTopic"}] and alarm["OKActions"] == [{"Ref": "ScaleDownTopic"}]
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        metrics = {m["Id"]: m for m in alarm["Metrics"]}
        assert metrics["depth"]["Expression"] == "visible + inflight"  # in-flight counts: no scale-in under busy loops
        assert metrics["inflight"]["MetricStat"]["Metric"]["MetricName"] == "ApproximateNumberOfMessagesNotVisible"
    billing = depth[f"{PREFIX}-billing-depth-1"]["Metrics"][0]["MetricStat"]["Metric"]["Dimensions"]
    assert billing == [{"Name": "QueueName", "Value": "billing-events"}]
    dlq_alarms = sorted(name for name in alarms if name.endswith("-dlq-not-empty"))
    assert dlq_alarms == [f"{PREFIX}-orders-dlq-not-empty", f"{PREFIX}-thumbnails-dlq-not-empty"]
    assert {f"{PREFIX}-loops-stalled", f"{PREFIX}-poller-runaway", f"{PREFIX}-poller-silent"} <= set(alarms)
    assert alarms[f"{PREFIX}-poller-runaway"]["Threshold"] == (8 + 3 + 4 + 2) * 10


def test_the_stack_creates_the_queue_it_is_asked_to(resources: dict[str, Any]) -> None:
    queue, dlq = props(resources, "ThumbnailsQueue"), props(resources, "ThumbnailsDeadLetterQueue")
    assert (queue["QueueName"], queue["VisibilityTimeout"]) == ("thumbnails-dev", 120)
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["ThumbnailsDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 3,
    }
    assert dlq["QueueName"] == "thumbnails-dev-dlq"
    assert "OrdersQueue" not in resources and "BillingQueue" not in resources


def test_functions_schedule_and_table(resources: dict[str, Any]) -> None:
    poller = props(resources, "PollerLambdaFunction")
    assert (poller["RecursiveLoop"], poller["Timeout"], poller["Architectures"], poller["Runtime"]) == (
        "Allow",
        600,
        ["arm64"],
        "python3.12",
    )
    assert poller["Handler"] == "poller.handler.handler"
    assert poller["Environment"]["Variables"] == {
        "LOOPS_TABLE": f"{PREFIX}-tokens",
        "POLLER_FUNCTION": f"{PREFIX}-poller",
        "SCALE_UP_FUNCTION": f"{PREFIX}-scaleUp",
        "LOOPS_PREFIX": PREFIX,
        "SQS_LOOPS_CONFIG": FIXTURE,
        "LOOPS_RUNS_TOPIC": {"Ref": "RunsTopic"},  # the runs' notices (docs/runs.md)
    }
    assert props(resources, "RestartEventsRuleSchedule1")["ScheduleExpression"] == "rate(1 minute)"
    handlers = {props(resources, f"{n}LambdaFunction")["Handler"] for n in ("ScaleUp", "ScaleDown", "Restart")}
    assert handlers == {"scaler.handlers.scale_up", "scaler.handlers.scale_down", "scaler.handlers.restart"}
    table = props(resources, "TokenTable")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [
        {"AttributeName": "queue_url", "KeyType": "HASH"},
        {"AttributeName": "token", "KeyType": "RANGE"},
    ]
    assert props(resources, "ScaleUpSnsSubscriptionSqsloopsciscaleup")["TopicArn"] == {"Ref": "ScaleUpTopic"}


def _statements(resources: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [s for policy in props(resources, role)["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def test_each_function_has_its_own_scoped_role(resources: dict[str, Any]) -> None:
    assert "IamRoleLambdaExecution" not in resources  # no role shared by every function
    functions = {k: r for k, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    assert {k: r["Properties"]["Role"] for k, r in functions.items()} == {
        f"{name}LambdaFunction": {"Fn::Sub": f"${{{name}Role.Arn}}"}
        for name in ("Poller", "ScaleUp", "ScaleDown", "Restart")
    }
    for role in ("PollerRole", "ScaleUpRole", "ScaleDownRole", "RestartRole"):
        for statement in _statements(resources, role):
            actions = statement["Action"]
            assert not any(a == "*" or a.endswith(":*") for a in actions), statement
            if set(actions) <= XRAY_ACTIONS:
                continue  # X-Ray has no resource-level permissions
            assert "*" not in statement["Resource"], statement
    by_action = {a: s for s in _statements(resources, "PollerRole") for a in s["Action"]}
    queues = json.dumps(by_action["sqs:ReceiveMessage"]["Resource"])
    for arn in (
        ":sqs:${AWS::Region}:${AWS::AccountId}:orders-prod",
        ":sqs:us-east-1:210987654321:billing-events",  # another account of the region, by URL
        "thumbnails-dev",
    ):
        assert arn in queues
    assert by_action["dynamodb:UpdateItem"]["Resource"] == [{"Fn::GetAtt": ["TokenTable", "Arn"]}]
    invocable = json.dumps(by_action["lambda:InvokeFunction"]["Resource"])
    assert f"function:{PREFIX}-poller" in invocable
    assert f"function:{PREFIX}-scaleUp" in invocable  # loops ask scale_up for growth (docs/scaling.md)
    assert "sqs:GetQueueAttributes" in by_action and by_action["sqs:GetQueueAttributes"]["Resource"]  # depth reads
    assert "function:reports-worker" in invocable and "function:reports-worker:*" in invocable  # function: target
    logs = json.dumps(by_action["logs:PutLogEvents"]["Resource"])
    assert f"log-group:/aws/lambda/{PREFIX}-poller:*" in logs and "scaleUp" not in logs
    restart = {a for s in _statements(resources, "RestartRole") for a in s["Action"]}
    assert "sqs:ReceiveMessage" not in restart and "cloudwatch:DescribeAlarms" in restart


def test_kms_keys_are_granted_for_those_keys_only(resources: dict[str, Any]) -> None:
    decrypt = [s for s in _statements(resources, "PollerRole") if "kms:Decrypt" in s["Action"]]
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert [s["Resource"] for s in decrypt] == [[key], ["arn:aws:kms:us-east-1:123456789012:key/*"]]
    assert decrypt[1]["Condition"] == {"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/thumbnails"}}
    assert (
        props(resources, "ThumbnailsQueue")["KmsMasterKeyId"] == "arn:aws:kms:us-east-1:123456789012:alias/thumbnails"
    )
    producers = props(resources, "ProducersPolicy")["PolicyDocument"]["Statement"]
    assert {a for s in producers for a in s["Action"]} >= {"sqs:SendMessage", "kms:GenerateDataKey"}


def test_the_poller_s_async_invokes_and_logs(resources: dict[str, Any]) -> None:
    configs = {
        props(resources, k)["Qualifier"]: props(resources, k)
        for k, r in resources.items()
        if r["Type"] == "AWS::Lambda::EventInvokeConfig"
    }
    assert sorted(configs) == ["$LATEST", "live"]  # poller.aliases: [live]
    for config in configs.values():
        assert (config["MaximumRetryAttempts"], config["FunctionName"]) == (0, {"Ref": "PollerLambdaFunction"})
        assert config["MaximumEventAgeInSeconds"] == 60 + 20 + 20  # heartbeat + longest poll + margin
    restart = props(resources, "RestartLambdaEvConf")
    assert (restart["MaximumRetryAttempts"], restart["MaximumEventAgeInSeconds"]) == (0, 60)  # the next minute's wins
    poller = props(resources, "PollerLambdaFunction")
    assert poller["ReservedConcurrentExecutions"] == 40
    for name in ("Poller", "ScaleUp", "ScaleDown", "Restart"):
        logging_config = props(resources, f"{name}LambdaFunction")["LoggingConfig"]
        assert logging_config == {"LogFormat": "JSON", "ApplicationLogLevel": "WARN", "SystemLogLevel": "WARN"}


def test_the_package_holds_the_code_config_and_requirements_but_not_boto3(
    packaged: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = packaged / "sqs-loops.zip"
    names = set(zipfile.ZipFile(archive).namelist())
    tops = {n.split("/")[0] for n in names}
    assert {"poller", "scaler", "yaml", "pynamodb", "requests"} <= tops
    # The config, its JSON form (read without PyYAML at cold start), and no test code.
    assert sorted(n for n in names if n.startswith("tests/")) == [FIXTURE, FIXTURE + ".json"]
    assert "app/jobs.py" in names  # the handlers' package, found from the config
    assert not tops & {"boto3", "botocore", "dateutil", "docs", "node_modules", ".venv"}
    assert not tops & {"rich", "markdown_it", "pygments"}  # the CLI's terminal library stays out of the zip
    assert any(n.startswith("yaml/_yaml.cpython-312-aarch64") for n in names)  # built for the function's platform
    # Only what the functions import: no urllib3 shadowing the runtime's (its botocore's), no scripts, no
    # metadata of packages left out, and no bytecode of the packaging machine's Python: only the runtime's.
    assert not tops & {"urllib3", "bin", "jmespath", "six.py", "s3transfer"}
    assert not [n for n in names if ".dist-info/" in n.split("/")[0] + "/"], sorted(t for t in tops if "dist-info" in t)
    assert not [n for n in names if n.endswith(".pyc") and not n.endswith(".cpython-312.pyc")]
    with capsys.disabled():
        print(f"\ndeployment package: {archive.stat().st_size / 1e6:.2f} MB zipped, {len(names)} files")


def test_the_zip_ships_the_lambda_code_and_nothing_of_deploy_time_the_cli_or_the_sandbox(packaged: Path) -> None:
    names = set(zipfile.ZipFile(packaged / "sqs-loops.zip").namelist())
    ours = {str(p.relative_to(ROOT)) for package in SHIPPED_PACKAGES for p in (ROOT / package).rglob("*.py")}
    assert ours - names == set()  # every module of poller/, scaler/ and producer/, so no import fails in Lambda
    assert not {n.split("/")[0] for n in names} & {"deploy", "ops", "sandbox", "testing", "bench"}
    assert not [n for n in names if n.split("/")[0] in SHIPPED_PACKAGES and not n.endswith((".py", ".pyc"))]


def test_every_module_of_the_zip_ships_its_bytecode_for_the_runtime(packaged: Path) -> None:
    # Lambda's code directory is read-only: a module without bytecode is compiled again on every cold start.
    archive = zipfile.ZipFile(packaged / "sqs-loops.zip")
    names = set(archive.namelist())
    sources = [n for n in names if n.endswith(".py")]
    compiled = {n for n in names if n.endswith(".pyc")}
    if runtime_python("python3.12", ROOT) is None:  # deploy/artifact.py found no 3.12 here: none, as it said
        assert not compiled
        return
    expected = {
        f"{n.rpartition('/')[0]}/__pycache__/{n.rpartition('/')[2][:-3]}.cpython-312.pyc".lstrip("/") for n in sources
    }
    assert expected == compiled
    header = archive.read("poller/__pycache__/handler.cpython-312.pyc")[:8]
    assert int.from_bytes(header[4:8], "little") == 0b11  # checked-hash (PEP 552): a source edited later wins


def test_the_dashboard_and_the_operators_alarms_are_in_the_stack(resources: dict[str, Any]) -> None:
    alarms = {
        p["AlarmName"]: p
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        for p in [r["Properties"]]
    }
    alerts = [{"Ref": "AlertsTopic"}]
    too_old = alarms[f"{PREFIX}-orders-too-old"]  # only orders sets max_age_s
    assert (too_old["MetricName"], too_old["Threshold"], too_old["AlarmActions"]) == (
        "ApproximateAgeOfOldestMessage",
        900,
        alerts,
    )
    assert not [name for name in alarms if name.endswith("-too-old") and name != f"{PREFIX}-orders-too-old"]
    # One loop-stopped alarm for the deployment (a resting queue pays no alarm of its own).
    stopped = alarms[f"{PREFIX}-loop-stopped"]
    assert (stopped["Namespace"], stopped["MetricName"], stopped["AlarmActions"]) == (
        "SqsLoops",
        "LoopsStopped",
        alerts,
    )
    assert {d["Name"]: d["Value"] for d in stopped["Dimensions"]} == {"deployment": PREFIX}
    assert not [name for name in alarms if name.endswith("-loop-stopped") and name != f"{PREFIX}-loop-stopped"]
    failing = alarms[f"{PREFIX}-restart-failing"]
    assert failing["Dimensions"] == [{"Name": "FunctionName", "Value": f"{PREFIX}-restart"}]
    (dashboard,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    assert dashboard["DashboardName"] == PREFIX
    body = json.loads(dashboard["DashboardBody"]["Fn::Sub"])
    titles = [w["properties"].get("title", "") for w in body["widgets"]]
    for key in ("orders", "billing", "thumbnails", "reports"):
        assert (
            f"{key}: depth" in titles and f"{key}: loops" in titles and f"{key}: handled and failed a minute" in titles
        )
    assert "orders: dead-letter queue" in titles and "billing: dead-letter queue" not in titles  # billing has none
    assert "reports: calls a second against rate_limit" in titles  # the one rate-limited queue


def test_tracing_from_the_config_turns_on_x_ray_for_every_function(resources: dict[str, Any]) -> None:
    functions = {k: r["Properties"] for k, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    assert len(functions) == 4
    assert all(p.get("TracingConfig") == {"Mode": "Active"} for p in functions.values())


def test_cfn_lint_finds_no_error(packaged: Path) -> None:
    cfn_lint = shutil.which("cfn-lint", path=str(Path(os.sys.executable).parent)) or "cfn-lint"
    result = subprocess.run(
        [cfn_lint, str(packaged / "cloudformation-template-update-stack.json")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_config_error_fails_the_package_with_its_own_message(tmp_path: Path) -> None:
    result = package("tests/fixtures/bad-queues.yml", tmp_path)
    assert result.returncode != 0
    assert "queues.orders.max_loops: expected an integer >= 1, got 'ten'" in result.stdout + result.stderr
