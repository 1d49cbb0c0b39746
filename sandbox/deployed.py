"""`serverless deploy` for real, into the sandbox's moto server (``sqs-loops sandbox --deployed``).

The project's own ``serverless.yml`` is deployed with osls (its AWS SDK v3 honours ``AWS_ENDPOINT_URL``)
with dummy credentials. Then the stack is read back: its template (what was deployed, not a second
rendering), what moto's CloudFormation skipped (filled in by sandbox/stack_fill.py), and every function's
handler, timeout, environment and code. The code is the zip in the deployment bucket that the template
names, checked against the CodeSha256 moto's Lambda holds for the function, and unpacked for the local
runtime (sandbox/containers.py).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from poller.logs import log
from sandbox.containers import PackagedFunction
from sandbox.stack_fill import FillReport, Resolver, fill_in

STAGE = "local"
DEPLOY_TIMEOUT_S = 600.0  # osls takes ~20 s here; the first run also downloads the wheels from PyPI
SERVERLESS = Path("node_modules") / ".bin" / "serverless"
_SERVICE = re.compile(r"^service:\s*([A-Za-z0-9-]+)\s*$", re.MULTILINE)


DEPLOYED_FAULTS = frozenset({"duplicate", "drop", "notify_dup", "notify_lost"})
"""The faults the sandbox injects outside the functions (the runtime's async invoke, the alarm evaluator).
The others hook this process's botocore or the demo handlers' module state, which containers do not share."""


def check_faults(kinds: Any) -> None:
    other = sorted(set(kinds) - DEPLOYED_FAULTS)
    if other:
        raise ValueError(
            f"--faults {','.join(other)}: not with --deployed (the functions run in their own processes);"
            f" possible: {', '.join(sorted(DEPLOYED_FAULTS))}"
        )


class DeployFailed(RuntimeError):
    """`serverless deploy` into the sandbox failed; the message ends with its output."""


@dataclass
class Deployment:
    stack: str
    prefix: str
    functions: dict[str, PackagedFunction]  # function name -> what Lambda holds for it
    fill: FillReport
    seconds: float
    resource_count: int
    output: str = field(repr=False, default="")

    def summary(self) -> str:
        filled = ", ".join(f"{lid} ({kind})" for lid, kind in sorted(self.fill.filled.items())) or "nothing"
        line = f"filled in from the deployed template (moto's CloudFormation skips them): {filled}"
        if self.fill.not_filled:
            line += "; skipped and NOT filled in: " + ", ".join(f"{k} ({v})" for k, v in self.fill.not_filled.items())
        return line


def deployed_prefix(root: Path, stage: str = STAGE) -> str:
    """``<service>-<stage>`` of the project's serverless.yml: the LOOPS_PREFIX of the deployment."""
    found = _SERVICE.search((root / "serverless.yml").read_text())
    if found is None:
        raise DeployFailed(f"{root / 'serverless.yml'}: no `service:` line")
    return f"{found.group(1)}-{stage}"


def deploy(
    *, root: Path, config_path: Path, endpoint_url: str, region: str, account: str, workdir: Path, stage: str = STAGE
) -> Deployment:
    """Run `serverless deploy --stage STAGE` against ``endpoint_url``, fill in what moto skipped, and
    unpack every function's code under ``workdir``."""
    started = time.monotonic()
    output = _run_serverless(root, config_path, endpoint_url, region, stage)
    stack = f"{deployed_prefix(root, stage)}"
    clients = _clients(endpoint_url, region)
    body = clients("cloudformation").get_template(StackName=stack)["TemplateBody"]
    template: dict[str, Any] = json.loads(body) if isinstance(body, str) else json.loads(json.dumps(body))
    pages = clients("cloudformation").get_paginator("list_stack_resources").paginate(StackName=stack)
    physical = {
        r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
        for page in pages
        for r in page["StackResourceSummaries"]
        if r["LogicalResourceId"]  # moto lists what it skipped with no logical id
    }
    resolve = Resolver(template, physical, region, account, _arn_of(clients, region, account))
    # The code first: the deployment bucket's policy (filled in below) denies plain-HTTP reads, as on AWS.
    functions = _functions(template, physical, resolve, clients, workdir)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Tried to parse", category=UserWarning)
        fill = fill_in(template, physical, resolve, clients)
    deployment = Deployment(
        stack=stack,
        prefix=stack,
        functions=functions,
        fill=fill,
        seconds=round(time.monotonic() - started, 1),
        resource_count=len(template["Resources"]),
        output=output,
    )
    log(
        "info",
        "sandbox_deployed",
        stack=stack,
        seconds=deployment.seconds,
        filled=fill.filled,
        not_filled=fill.not_filled,
    )
    return deployment


def _run_serverless(root: Path, config_path: Path, endpoint_url: str, region: str, stage: str) -> str:
    command = [str(root / SERVERLESS), "deploy", "--stage", stage, "--region", region]
    if not (root / SERVERLESS).exists():
        raise DeployFailed(f"{root / SERVERLESS} is missing: run `npm ci` (make node_modules/.installed)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=endpoint_url,  # every client of osls's SDK v3 goes to moto
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION=region,
        SQS_LOOPS_CONFIG=str(config_path),
        SLS_TELEMETRY_DISABLED="1",
    )
    try:
        done = subprocess.run(
            command, cwd=root, env=env, capture_output=True, text=True, timeout=DEPLOY_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise DeployFailed(f"serverless deploy did not finish in {DEPLOY_TIMEOUT_S:.0f} s") from exc
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise DeployFailed(f"serverless deploy --stage {stage} failed ({done.returncode}):\n{output[-4000:]}")
    return output


def _clients(endpoint_url: str, region: str) -> Any:
    made: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in made:  # moto itself, never the local Lambda runtime
            made[service] = boto3.client(service, endpoint_url=endpoint_url, region_name=region)
        return made[service]

    return client


def _arn_of(clients: Any, region: str, account: str) -> Any:
    def arn(kind: str, logical: str, physical: str) -> str:
        if physical.startswith("arn:"):
            return physical
        if kind == "AWS::Lambda::Function":
            return f"arn:aws:lambda:{region}:{account}:function:{physical}"
        if kind == "AWS::SQS::Queue":
            attributes = clients("sqs").get_queue_attributes(QueueUrl=physical, AttributeNames=["QueueArn"])
            return str(attributes["Attributes"]["QueueArn"])
        if kind == "AWS::DynamoDB::Table":
            return str(clients("dynamodb").describe_table(TableName=physical)["Table"]["TableArn"])
        if kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{physical}"
        if kind == "AWS::IAM::Role":
            return f"arn:aws:iam::{account}:role/{physical}"
        raise KeyError(f"Fn::GetAtt {logical}.Arn: no ARN rule for {kind}")

    return arn


def _functions(
    template: dict[str, Any], physical: dict[str, str], resolve: Resolver, clients: Any, workdir: Path
) -> dict[str, PackagedFunction]:
    """Every function as moto's Lambda holds it, its code fetched from where the template put it."""
    unpacked: dict[str, Path] = {}
    functions = {}
    for logical, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Lambda::Function" or logical not in physical:
            continue
        config = clients("lambda").get_function(FunctionName=physical[logical])["Configuration"]
        code = resolve(resource["Properties"]["Code"])
        sha = config["CodeSha256"]
        if sha not in unpacked:
            data = clients("s3").get_object(Bucket=code["S3Bucket"], Key=code["S3Key"])["Body"].read()
            digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
            if digest != sha:
                raise DeployFailed(f"{config['FunctionName']}: s3://{code['S3Bucket']}/{code['S3Key']} is not its code")
            target = workdir / f"package-{len(unpacked) + 1}"
            zipfile.ZipFile(io.BytesIO(data)).extractall(target)
            unpacked[sha] = target
        functions[config["FunctionName"]] = PackagedFunction(
            name=config["FunctionName"],
            handler=config["Handler"],
            timeout_s=float(config["Timeout"]),
            task_dir=unpacked[sha],
            environment=dict(config.get("Environment", {}).get("Variables", {})),
            memory_mb=int(config.get("MemorySize", 128)),
            arn=config["FunctionArn"],
        )
    return functions
