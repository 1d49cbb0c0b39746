"""A local Lambda runtime: the project's functions run in threads, called through the real Lambda Invoke
API over HTTP on loopback (boto3's lambda client is pointed here with AWS_ENDPOINT_URL_LAMBDA), so the
code that invokes them is the deployed code.

Async invokes (``X-Amz-Invocation-Type: Event``) answer 202 at once and run later, in their own thread,
with a context whose ``get_remaining_time_in_millis`` counts down a real deadline. Faults, for the demo and
reliability runs (sandbox/faults.py): an async invoke delivered twice, or dropped; an invocation killed as a
timeout or an out-of-memory kill would (:class:`~sandbox.faults.Invocation`: it is accounted as ended at once,
and its threads never get through another AWS call); a loop made to crash at the end of its current step.

A function given a ``package`` (``sqs-loops sandbox --deployed``) runs instead from its deployed zip, in a
container process of its own (sandbox/containers.py), with its deployed handler, timeout and environment.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlparse

from poller.aws.limits import LAMBDA_SYNC_PAYLOAD_BYTES
from poller.logs import LOGGER, log
from sandbox import loopback
from sandbox.containers import ContainerFailed, ContainerPool, FunctionError, PackagedFunction
from sandbox.faults import FaultPlan, Invocation, InvocationCrashed, begin_invocation, release_killed

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"


@dataclass(frozen=True)
class LocalFunction:
    name: str
    handler: str  # dotted path
    timeout_s: float
    package: PackagedFunction | None = None  # set: run from the deployed zip, in a container process


class LocalContext:
    """What a Lambda handler's context offers that our code and users' handlers use."""

    def __init__(self, function: LocalFunction, timeout_s: float):
        self.function_name = function.name
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function.name}"
        self.aws_request_id = str(uuid.uuid4())
        self.memory_limit_in_mb = 256
        self.deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


Observer = Callable[[str, Any, Any], None]


class FunctionFailed(dict[str, Any]):
    """The result of a function that raised: Lambda's error payload, answered with X-Amz-Function-Error."""


@dataclass
class LocalLambda:
    functions: dict[str, LocalFunction]
    faults: FaultPlan = field(default_factory=FaultPlan)
    observers: list[Observer] = field(default_factory=list)
    containers: ContainerPool | None = None  # for functions with a package

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._crash_tokens: set[tuple[str, str]] = set()  # (queue_url, token) of loops to crash
        self._running: dict[tuple[str, str], list[LocalContext]] = {}
        self._running_loops: Counter[tuple[str, str, str]] = Counter()  # (queue_url, token, loop_id) -> steps
        self.max_running: dict[str, int] = {}  # queue_url -> most tokens with a loop step running at once
        # queue_url -> most loops (token, loop_id) with a step running at once: above max_running only while a
        # token has steps of two loops (below); one loop's steps (its recursion, a duplicate delivery) count once
        self.max_loops_running: dict[str, int] = {}
        # A token with steps of two loops running at once (a takeover, or a retired row made anew, while the
        # old loop finishes the batch in hand): since when, and per queue the overlaps once they ended
        # (seconds). Steps of one loop (its recursion, a duplicate delivery) are one loop: the claim lets only
        # one of them work.
        self._overlap_since: dict[tuple[str, str], float] = {}
        self.overlaps: dict[str, list[float]] = {}
        self._steps: list[tuple[str, float, float | None]] = []  # loop steps: (queue_url, started, ended) monotonic
        self._threads: list[threading.Thread] = []
        self.invocations = 0
        self.crashed: list[tuple[str, str]] = []
        self._killed: list[Invocation] = []  # invocations a crash killed (their threads are parked)
        self._server: ThreadingHTTPServer | None = None
        self._closing = False

    # -- the HTTP face ---------------------------------------------------------------------------

    def start(self) -> str:
        """Serve the Invoke API; returns its URL (for AWS_ENDPOINT_URL_LAMBDA)."""
        self._server, url = loopback.serve(self._serve, name="local-lambda")
        return url

    def stop(self, wait_s: float = 8.0) -> None:
        """Ask running steps to wrap up (their deadline is now), wait for them, then close the API. Steps
        they try to start meanwhile are accepted and not run, as if the account were being torn down."""
        release_killed()  # killed invocations' threads unwind now (their AWS calls keep failing)
        with self._lock:
            self._closing = True
            for contexts in self._running.values():
                for context in contexts:
                    context.deadline = time.monotonic()
            threads = list(self._threads)
        end = time.monotonic() + wait_s
        for thread in threads:
            thread.join(max(0.0, end - time.monotonic()))
        loopback.stop(self._server)
        if self.containers is not None:
            self.containers.close()

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        path = urlparse(request.path).path
        parts = path.split("/")
        # /2015-03-31/functions/<name or ARN>/invocations
        if len(parts) != 5 or parts[2] != "functions" or parts[4] != "invocations":
            return _reply(request, 404, {"Type": "User", "message": f"no such API: {path}"})
        name = unquote(parts[3]).split(":")
        function = name[6] if len(name) >= 7 else name[0]  # an ARN (maybe qualified) or a name
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length)
        if len(body) > LAMBDA_SYNC_PAYLOAD_BYTES:  # as Lambda answers a request payload over its limit
            message = f"Request must be smaller than {LAMBDA_SYNC_PAYLOAD_BYTES} bytes for the InvokeFunction operation"
            return _reply(request, 413, {"Type": "User", "message": message}, "RequestTooLargeException")
        payload = json.loads(body or b"{}")
        if function not in self.functions:
            return _reply(
                request,
                404,
                {"Type": "User", "message": f"Function not found: {function}"},
                "ResourceNotFoundException",
            )
        if request.headers.get("X-Amz-Invocation-Type") == "Event":
            self.invoke_async(function, payload)
            return _reply(request, 202, None)
        result = self.run(function, payload)
        return _reply(request, 200, result, function_error="Unhandled" if isinstance(result, FunctionFailed) else None)

    # -- running functions -----------------------------------------------------------------------

    def invoke_async(self, function: str, payload: Any) -> None:
        """Queue one invocation, as Lambda's async Invoke does (at least once; faults apply)."""
        if self._closing:
            return
        loop = _loop_of(payload)
        token = loop[1]
        with self._lock:
            if loop in self._crash_tokens:
                self._crash_tokens.discard(loop)
                self.crashed.append(loop)
                log("warning", "sandbox_crash", function=function, queue_url=loop[0], token=token)
                return
            if self.faults.roll("drop"):
                log("warning", "sandbox_invoke_dropped", function=function, token=token)
                return
            copies = 2 if self.faults.roll("duplicate") else 1
        for _ in range(copies):
            thread = threading.Thread(target=self.run, args=(function, payload), name=f"lambda-{function}", daemon=True)
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def run(self, function_name: str, payload: Any) -> Any:
        function = self.functions[function_name]
        context = LocalContext(function, function.timeout_s)
        loop = _loop_of(payload)
        loop_id = str(payload.get("loop_id", "")) if isinstance(payload, dict) else ""
        step = -1  # its place in _steps (a loop step's)
        with self._lock:  # one lock with stop(): a step either registers before it, or never starts
            if self._closing:  # queued before the runtime stopped: never starts, as in a deleted account
                return None
            self.invocations += 1
            self._running.setdefault(loop, []).append(context)
            if loop[0]:
                self._running_loops[(*loop, loop_id)] += 1
                running = sum(1 for (url, _), steps in self._running.items() if url == loop[0] and steps)
                self.max_running[loop[0]] = max(self.max_running.get(loop[0], 0), running)
                loops = sum(1 for (url, _, _), steps in self._running_loops.items() if url == loop[0] and steps > 0)
                self.max_loops_running[loop[0]] = max(self.max_loops_running.get(loop[0], 0), loops)
                self._track_overlap(loop)
                step = len(self._steps)
                self._steps.append((loop[0], time.monotonic(), None))
        settled: list[bool] = []  # the invocation's end is accounted for once: by its kill or by its return

        def settle(result: Any) -> None:
            with self._lock:
                if settled:
                    return
                settled.append(True)
                self._running[loop].remove(context)
                if loop[0]:
                    self._running_loops[(*loop, loop_id)] -= 1
                    self._track_overlap(loop)
                    self._steps[step] = (loop[0], self._steps[step][1], time.monotonic())
            for observer in self.observers:
                observer(function_name, payload, result)

        def killed() -> None:  # the container died: no result, no next step, nothing cleaned up
            log("warning", "sandbox_invocation_crashed", function=function_name, queue_url=loop[0], token=loop[1])
            with self._lock:
                self.crashed.append(loop)
                self._killed.append(invocation)
            settle(FunctionFailed(errorMessage="the invocation was killed", errorType="Crashed"))

        invocation = Invocation(function_name, on_kill=killed)
        module, _, attribute = function.handler.rpartition(".")
        begin_invocation(invocation)
        try:
            if function.package is not None:
                result = self._run_packaged(function.package, payload, context)
            else:
                result = getattr(importlib.import_module(module), attribute)(payload, context)
        except InvocationCrashed as crash:  # unwinding at the end of the sandbox, or a crash of no invocation
            if not invocation.killed.is_set():
                log("warning", "sandbox_invocation_crashed", function=function_name, queue_url=loop[0], token=loop[1])
                with self._lock:
                    self.crashed.append(loop)
            result = FunctionFailed(errorMessage=str(crash), errorType="Crashed")
        except Exception as exc:  # Lambda would log it and, for async invokes, maybe retry; we log
            log("error", "sandbox_function_failed", function=function_name, error=repr(exc))
            result = FunctionFailed(errorMessage=str(exc), errorType=type(exc).__name__)
        finally:
            begin_invocation(None)
        if invocation.killed.is_set():
            return FunctionFailed(errorMessage="the invocation was killed", errorType="Crashed")
        settle(result)
        return result

    def _run_packaged(self, package: PackagedFunction, payload: Any, context: LocalContext) -> Any:
        if self.containers is None:
            raise RuntimeError(f"{package.name} has a package but the runtime has no containers")
        try:
            return self.containers.invoke(package, payload, context)
        except (FunctionError, ContainerFailed) as failed:  # what Lambda answers: its error payload
            log("error", "sandbox_function_failed", function=package.name, error=failed.payload.get("errorMessage"))
            return FunctionFailed(**failed.payload)

    def _track_overlap(self, loop: tuple[str, str]) -> None:
        """After a step of ``loop`` started or ended (under the lock): open or close its token's overlap."""
        loops = sum(1 for (url, token, _), steps in self._running_loops.items() if (url, token) == loop and steps > 0)
        since = self._overlap_since.get(loop)
        if loops > 1 and since is None:
            self._overlap_since[loop] = time.monotonic()
        elif loops <= 1 and since is not None:
            del self._overlap_since[loop]
            self.overlaps.setdefault(loop[0], []).append(time.monotonic() - since)

    def overlap_s(self, queue_url: str) -> list[float]:
        """How long each token of ``queue_url`` had steps of two loops running at once (seconds), those still
        going counted until now."""
        now = time.monotonic()
        with self._lock:
            going = [now - since for (url, _), since in self._overlap_since.items() if url == queue_url]
            return [*self.overlaps.get(queue_url, []), *going]

    def loop_seconds(self, queue_url: str, start: float, end: float) -> float:
        """Seconds of loop steps of ``queue_url`` running between the monotonic times ``start`` and ``end``
        (what Lambda bills by: each step from its start to its return, a step still running until now)."""
        now = time.monotonic()
        with self._lock:
            spans = [(a, now if b is None else b) for url, a, b in self._steps if url == queue_url]
        return sum(max(0.0, min(b, end) - max(a, start)) for a, b in spans)

    def running_loops(self) -> set[tuple[str, str, str]]:
        """(queue_url, token, loop_id) of every loop with a step running now."""
        with self._lock:
            return {key for key, steps in self._running_loops.items() if steps > 0}

    def crash(self, queue_url: str, token: str) -> bool:
        """Make the loop on ``token`` of ``queue_url`` die: its running step ends now and its next step
        never runs, as if its container had crashed. False if no step of that loop is running."""
        with self._lock:
            running = self._running.get((queue_url, token)) or []
            if not running:
                return False
            self._crash_tokens.add((queue_url, token))
            for context in running:
                context.deadline = time.monotonic()
        return True


def forward_log(function: str, line: str) -> None:
    """A container's output line, into our log as CloudWatch Logs would hold it: JSON lines as they are."""
    try:
        parsed = json.loads(line)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("level"), str) and parsed.get("event"):
        LOGGER.log(_LEVELS.get(parsed["level"], logging.INFO), line)
    elif line.strip():
        log("info", "function_output", function=function, line=line)


def _loop_of(payload: Any) -> tuple[str, str]:
    """(queue_url, token) of a loop event; ("", "") for other events. A loop's growth request to scaleUp
    names its queue (and its loop_id) but no token: it is the control plane running, not a loop, and
    counting it as a step on a token "" made a queue look one loop above its ``max_loops``."""
    if isinstance(payload, dict) and payload.get("queue_url") and payload.get("token"):
        return str(payload["queue_url"]), str(payload["token"])
    return "", ""


def _reply(
    request: BaseHTTPRequestHandler,
    status: int,
    body: Any,
    error_type: str | None = None,
    *,
    function_error: str | None = None,
) -> None:
    data = b"" if body is None else json.dumps(body, default=str).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(data)))
    if error_type:
        request.send_header("x-amzn-ErrorType", error_type)
    if function_error:  # the function itself failed: the SDK reads this as FunctionError
        request.send_header("X-Amz-Function-Error", function_error)
    request.end_headers()
    request.wfile.write(data)
