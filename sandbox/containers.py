"""Local Lambda containers for functions run from their deployed package (``sqs-loops sandbox --deployed``).

A container is a child process (sandbox/lambda_bootstrap.py) whose ``sys.path`` holds the unpacked zip
and the libraries Lambda's Python runtime provides, nothing of the working tree, and whose environment is
the deployed function's own plus what stands in for the AWS network (the endpoints, dummy credentials).
It serves one invocation at a time and is kept warm for the next, as Lambda keeps an execution
environment; concurrent invocations get more containers. An invocation that overruns its timeout gets its
container killed, as Lambda does.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from deploy.artifact import runtime_python
from poller.logs import log

BOOTSTRAP = Path(__file__).with_name("lambda_bootstrap.py")
LAMBDA_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
"""What Lambda's python3.12 runtime brings besides the standard library (the package leaves them out)."""
INIT_TIMEOUT_S = 30.0
"""Lambda allows an init phase 10 s; a loaded 2-core machine starting Python 3.12 and importing boto3 needs
more, so a container that is slower than this fails its invocation (Runtime.InitError)."""
TIMEOUT_GRACE_S = 2.0  # past its deadline, an invocation gets this long to answer before its container dies
WAIT_STEP_S = 0.1  # how often a waiting invocation looks at its deadline (a crash or stop moves it)
PYTHON_ENV = "SQS_LOOPS_LAMBDA_PYTHON"
LAMBDA_RUNTIME = "python3.12"  # serverless.yml's provider.runtime
PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""Names the interpreter of the containers; by default the machine's python3.12 (Lambda's), else this one."""
PASS_THROUGH = ("SQS_LOOPS_LOG_LEVEL", "SQS_LOOPS_DEMO_VENDOR", "PATH", "LANG", "TZ")
"""Environment the containers inherit besides the function's own: tool paths and the sandbox's stand-ins."""


class ContainerFailed(Exception):
    """The container ended the invocation without an answer (timed out, died): ``payload`` is what Lambda
    reports for it."""

    def __init__(self, payload: dict[str, str]) -> None:
        super().__init__(payload["errorMessage"])
        self.payload = payload


class FunctionError(Exception):
    """The function answered with an error (it raised, or its handler could not be loaded)."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(payload.get("errorMessage", ""))
        self.payload = payload


class Deadline(Protocol):
    deadline: float  # monotonic seconds
    aws_request_id: str

    def get_remaining_time_in_millis(self) -> int: ...


@dataclass(frozen=True)
class PackagedFunction:
    """A deployed function as Lambda holds it: its handler, timeout and environment, and the directory its
    zip was unpacked into."""

    name: str
    handler: str
    timeout_s: float
    task_dir: Path
    environment: Mapping[str, str] = field(default_factory=dict, hash=False)  # a dict: not part of the hash
    memory_mb: int = 128
    arn: str = ""


def lambda_python() -> str:
    """$SQS_LOOPS_LAMBDA_PYTHON, else a Python of Lambda's version found as ``serverless package`` finds the
    one it compiles the zip's bytecode with (:func:`deploy.artifact.runtime_python`), else the running one."""
    return os.environ.get(PYTHON_ENV) or runtime_python(LAMBDA_RUNTIME, PROJECT_ROOT) or sys.executable


def runtime_layer(into: Path) -> Path:
    """A directory holding (links to) only the libraries Lambda provides, taken from this interpreter."""
    into.mkdir(parents=True, exist_ok=True)
    for name in LAMBDA_PROVIDED:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise RuntimeError(f"{name} is not installed here: the local Lambda runtime needs it")
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        link = into / source.name
        if not link.exists():
            link.symlink_to(source)
    return into


LogSink = Callable[[str, str], None]  # (function name, one line of its output)


class Container:
    """One warm execution environment of one function."""

    def __init__(
        self, function: PackagedFunction, *, python: str, runtime_dir: Path, env: Mapping[str, str], on_log: LogSink
    ):
        self.function = function
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._ids = itertools.count(1)
        self.process = subprocess.Popen(
            [python, "-I", "-S", str(BOOTSTRAP), str(function.task_dir), str(runtime_dir), function.handler],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=function.task_dir,
            env=dict(env),
            text=True,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        threading.Thread(target=self._read_answers, args=(self.process.stdout,), daemon=True).start()
        threading.Thread(target=self._read_logs, args=(self.process.stderr, on_log), daemon=True).start()
        ready = self._next(time.monotonic() + INIT_TIMEOUT_S)
        if ready is None or not ready.get("ready"):
            self.kill()
            raise ContainerFailed({"errorType": "Runtime.InitError", "errorMessage": f"{function.name}: init failed"})
        self.ready: dict[str, Any] = ready

    def _read_answers(self, stream: IO[str]) -> None:
        for line in stream:
            self._answers.put(json.loads(line))
        self._answers.put(None)  # the process ended

    def _read_logs(self, stream: IO[str], on_log: LogSink) -> None:
        for line in stream:
            on_log(self.function.name, line.rstrip("\n"))

    def _next(self, until: float) -> dict[str, Any] | None:
        try:
            return self._answers.get(timeout=max(0.0, until - time.monotonic()))
        except queue.Empty:
            return None

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message, default=str) + "\n")
        self.process.stdin.flush()

    def invoke(self, payload: Any, context: Deadline) -> Any:
        """Run one invocation to its end; its deadline follows ``context.deadline`` (which may be cut)."""
        number = next(self._ids)
        remaining = context.get_remaining_time_in_millis()
        self._send({"id": number, "payload": payload, "remaining_ms": remaining, "request_id": context.aws_request_id})
        deadline = context.deadline
        while True:
            try:
                answer = self._answers.get(timeout=WAIT_STEP_S)
            except queue.Empty:
                if context.deadline < deadline:  # crashed or stopping: the function sees its time run out
                    deadline = context.deadline
                    self._send({"cut_ms": context.get_remaining_time_in_millis()})
                if time.monotonic() > deadline + TIMEOUT_GRACE_S:
                    self.kill()
                    timeout = self.function.timeout_s
                    raise ContainerFailed(
                        {"errorType": "Sandbox.Timedout", "errorMessage": f"Task timed out after {timeout:.2f} seconds"}
                    ) from None
                continue
            if answer is None:
                raise ContainerFailed({"errorType": "Runtime.ExitError", "errorMessage": "the container exited"})
            if answer.get("id") != number:
                continue
            if "error" in answer:
                raise FunctionError(answer["error"])
            return answer.get("result")

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=5)


@dataclass
class ContainerPool:
    """Warm containers per function, made on demand; ``first_ready`` keeps each function's init report
    (interpreter, handler file, modules this machine cannot load)."""

    extra_env: Mapping[str, str]
    on_log: LogSink
    python: str = field(default_factory=lambda_python)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[PackagedFunction, list[Container]] = {}  # a changed handler or package: new containers
        self._all: list[Container] = []
        self._layer_dir = Path(tempfile.mkdtemp(prefix="sqs-loops-runtime-"))
        self.runtime_dir = runtime_layer(self._layer_dir / "python")
        self.first_ready: dict[str, dict[str, Any]] = {}
        self.cold_starts = 0

    def environment(self, function: PackagedFunction) -> dict[str, str]:
        """The deployed environment, Lambda's reserved variables, and the stand-in AWS network."""
        inherited = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
        return {
            **inherited,
            **self.extra_env,
            **function.environment,
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(int(function.timeout_s)),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
            "LAMBDA_TASK_ROOT": str(function.task_dir),
            "SQS_LOOPS_SANDBOX_FUNCTION_ARN": function.arn,
            "PYTHONDONTWRITEBYTECODE": "1",  # the package directory stays as deployed
        }

    def invoke(self, function: PackagedFunction, payload: Any, context: Deadline) -> Any:
        container = self._take(function)
        try:
            result = container.invoke(payload, context)
        except ContainerFailed:
            container.kill()
            raise
        except FunctionError:
            self._give(container)
            raise
        self._give(container)
        return result

    def _take(self, function: PackagedFunction) -> Container:
        with self._lock:
            idle = self._idle.setdefault(function, [])
            while idle:
                container = idle.pop()
                if container.alive():
                    return container
        container = Container(
            function,
            python=self.python,
            runtime_dir=self.runtime_dir,
            env=self.environment(function),
            on_log=self.on_log,
        )
        with self._lock:
            self._all.append(container)
            self.cold_starts += 1
            if function.name not in self.first_ready:
                self.first_ready[function.name] = container.ready
                log("info", "sandbox_container_ready", function=function.name, **_summary(container.ready))
        return container

    def _give(self, container: Container) -> None:
        with self._lock:
            if container.alive():
                self._idle.setdefault(container.function, []).append(container)

    def close(self) -> None:
        with self._lock:
            containers, self._all, self._idle = list(self._all), [], {}
        for container in containers:
            try:
                if container.process.stdin is not None:
                    container.process.stdin.close()
                container.process.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                container.kill()
        shutil.rmtree(self._layer_dir, ignore_errors=True)


def _summary(ready: dict[str, Any]) -> dict[str, Any]:
    return {k: ready.get(k) for k in ("python", "handler_file", "unloadable", "init_error")}
