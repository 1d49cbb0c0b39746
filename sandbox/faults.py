"""Fault injection for sandbox runs (docs/reliability.md): what can go wrong on AWS, injected where it
happens there, drawn from a seeded generator and counted where it is injected.

    kind           where                                      what the framework sees
    crash          the loop's DeleteMessageBatch call          its invocation dies after the handler, before the delete,
                   (made from the loop's background thread:    as abruptly as a timeout or an OOM kill: every thread of
                   poller/loop/background_delete.py)           it stops at its next AWS request, nothing more is logged,
                                                               no finally block reaches AWS (:class:`Invocation`)
    duplicate      the runtime's async invoke                  the same event delivered twice
    drop           the runtime's async invoke                  the event never runs
    throttle       every DynamoDB request of a function        400 ProvisionedThroughputExceededException
    sqs_error      every SQS request of a function             500 InternalError
    handler_error  the demo handlers, per batch               the handler raises
    slow           the demo handlers, per batch               the handler outlives the visibility timeout
    notify_dup     the alarm evaluator's notifications         delivered twice
    notify_lost    the alarm evaluator's notifications         never delivered

``throttle`` and ``sqs_error`` are real error responses, answered by a botocore ``before-send`` hook in
place of the moto server, so botocore parses them and applies its retry policy as it would on AWS (some
are absorbed there, the rest reach the loop's own retries). They apply to the functions' calls only (the
runtime's invocation threads and the keeper threads they start), never to the demo's feeder or sampler.

Faults can be switched off (:meth:`FaultPlan.stop`), so that a run can show the system converging
after them. The same hook records every successful write to the token table (:class:`TokenTrace`): the
reliability report checks ownership against it.
"""

from __future__ import annotations

import contextvars
import io
import json
import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import botocore.handlers
from botocore.awsrequest import AWSResponse
from botocore.handlers import REGISTER_FIRST

from poller.logs import LOGGER
from poller.loop.background_delete import THREAD_NAME as DELETE_THREAD
from poller.loop.keeper import THREAD_NAME as KEEPER_THREAD
from poller.loop.receive_ahead import THREAD_NAME as RECEIVE_THREAD

FAULT_KINDS: dict[str, str] = {
    "crash": "an invocation dies after receiving and handling a batch, before deleting it",
    "duplicate": "an async invoke is delivered twice",
    "drop": "an async invoke never runs",
    "throttle": "a DynamoDB request is throttled (400 ProvisionedThroughputExceededException)",
    "sqs_error": "an SQS request fails on the service's side (500 InternalError)",
    "handler_error": "the handler raises for a whole batch",
    "slow": "the handler outlives the queue's visibility timeout",
    "notify_dup": "an alarm notification is delivered twice",
    "notify_lost": "an alarm notification is lost",
}


class InvocationCrashed(BaseException):
    """Raised in a thread of a killed invocation when the sandbox lets it unwind (or when the crash struck a
    thread of no known invocation): a BaseException, so the loop's ``except Exception`` does not catch it."""


@dataclass
class Invocation:
    """One function invocation of the local runtime, known to every thread it starts (a context variable:
    the loop's helper threads run in the context of the thread that started them). A crash kills it as a
    timeout or an out-of-memory kill would: ``on_kill`` tells the runtime at once, then each of its threads
    stops at its next AWS request (it never returns) and nothing it logs from then on is written. No
    ``finally`` block gets to touch AWS: the invocation is simply gone."""

    function: str
    on_kill: Callable[[], None] = lambda: None
    killed: threading.Event = field(default_factory=threading.Event)

    def kill(self) -> None:
        if not self.killed.is_set():
            self.on_kill()  # before killed is set: the runtime's own lines about it are still written
            self.killed.set()
            with _killed_lock:
                _killed.append(self)


_invocation: contextvars.ContextVar[Invocation | None] = contextvars.ContextVar("sandbox_invocation", default=None)
_killed: list[Invocation] = []
_killed_lock = threading.Lock()
_released = threading.Event()  # set when the sandbox closes: killed invocations' threads unwind then


def begin_invocation(invocation: Invocation | None) -> None:
    """The runtime marks the thread that runs ``invocation`` (None when it ends): faults apply there."""
    _invocation.set(invocation)
    mark_invocation(None if invocation is None else invocation.function)


def current_invocation() -> Invocation | None:
    return _invocation.get()


def release_killed() -> None:
    """Let the threads of killed invocations unwind (the sandbox is closing): each raises InvocationCrashed
    where it stood, and every AWS request it still tries raises it again at once."""
    _released.set()


def _park() -> NoReturn:
    """A thread of a killed invocation stops here, as a frozen or killed container's would."""
    _released.wait()
    raise InvocationCrashed("the invocation was killed")


class _DropKilledLines(logging.Filter):
    """A killed invocation writes nothing more: its threads may still run Python until they reach an AWS
    call, but no log line of theirs reaches CloudWatch Logs (here: the sandbox's log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        invocation = _invocation.get()
        return invocation is None or not invocation.killed.is_set()


_DROP_KILLED = _DropKilledLines()


def parse_faults(spec: str | None) -> dict[str, float]:
    """``name=probability,...`` -> {name: probability}, naming what is wrong."""
    faults: dict[str, float] = {}
    for part in filter(None, (spec or "").split(",")):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in FAULT_KINDS:
            raise ValueError(f"--faults: unknown fault {name!r}; known: {', '.join(sorted(FAULT_KINDS))}")
        try:
            probability = float(value)
        except ValueError:
            raise ValueError(f"--faults: {name}: expected a probability from 0 to 1, got {value!r}") from None
        if not 0 <= probability <= 1:
            raise ValueError(f"--faults: {name}: expected a probability from 0 to 1, got {value!r}")
        faults[name] = probability
    return faults


@dataclass
class FaultPlan:
    """Probabilities (0-1) by kind, one seeded generator per kind, and the count of faults injected."""

    probabilities: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.probabilities) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        # One generator per kind: the draws of one kind do not shift when another kind is switched on.
        self._rand = {kind: random.Random(f"{self.seed}:{kind}") for kind in FAULT_KINDS}
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self.active = True
        self.stopped_at: float | None = None  # epoch seconds
        self.crashed_receipts: set[str] = set()  # receipt handles of batches a crash kept from being deleted

    def roll(self, kind: str) -> bool:
        """True if a fault of ``kind`` happens now (and count it)."""
        probability = self.probabilities.get(kind, 0.0)
        if probability <= 0:
            return False
        with self._lock:
            if not self.active or self._rand[kind].random() >= probability:
                return False
            self.injected[kind] += 1
            return True

    def stop(self) -> None:
        """No more faults from now on."""
        with self._lock:
            if self.active:
                self.active = False
                self.stopped_at = time.time()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {kind: self.injected.get(kind, 0) for kind in sorted(self.probabilities)}


# -- the token table, as written ---------------------------------------------------------------------


@dataclass(frozen=True)
class OwnerChange:
    """A successful write that gave a token row a new owner (``loop_id``), or deleted it (None)."""

    t: float  # epoch seconds, when the write's answer arrived
    queue_url: str
    token: str
    loop_id: str | None
    operation: str  # PutItem (create), UpdateItem (takeover), DeleteItem (release)


class TokenTrace:
    """Every successful create, takeover and delete of a token row, from the requests themselves."""

    def __init__(self, table_name: str):
        self.table_name = table_name
        self.changes: list[OwnerChange] = []
        self._lock = threading.Lock()

    def record(self, operation: str, params: Mapping[str, Any]) -> None:
        if params.get("TableName") != self.table_name:
            return
        owner: str | None
        if operation == "PutItem":
            item = params.get("Item", {})
            if "loop_id" not in item:
                return  # an override row: no loop
            key, owner = item, item["loop_id"]["S"]
        elif operation == "UpdateItem":
            key = params.get("Key", {})
            found = _set_value(params, "loop_id")
            if found is None:
                return  # claim, heartbeat, retire...: the owner stays
            owner = found
        elif operation == "DeleteItem":
            key, owner = params.get("Key", {}), None
        else:
            return
        if "queue_url" not in key or "token" not in key:
            return
        change = OwnerChange(time.time(), key["queue_url"]["S"], key["token"]["S"], owner, operation)
        with self._lock:
            self.changes.append(change)

    def snapshot(self) -> list[OwnerChange]:
        with self._lock:
            return list(self.changes)


def _set_value(params: Mapping[str, Any], attribute: str) -> str | None:
    """The value an UpdateExpression's SET gives ``attribute`` (PynamoDB writes ``SET #0 = :0, ...``)."""
    names = {v: k for k, v in params.get("ExpressionAttributeNames", {}).items()}
    placeholder = names.get(attribute)
    if placeholder is None:
        return None
    expression = params.get("UpdateExpression", "")
    set_part = re.split(r"\b(?:REMOVE|ADD|DELETE)\b", expression.split("SET", 1)[-1])[0] if "SET" in expression else ""
    match = re.search(re.escape(placeholder) + r"\s*=\s*(:\w+)", set_part)
    if not match:
        return None
    value = params.get("ExpressionAttributeValues", {}).get(match[1], {})
    return str(value["S"]) if "S" in value else None


# -- the botocore hook -------------------------------------------------------------------------------

_local = threading.local()


@dataclass(frozen=True)
class _Installed:
    plan: FaultPlan
    trace: TokenTrace | None


_current: _Installed | None = None


def mark_invocation(function: str | None) -> None:
    """The runtime marks the thread that runs a function (None when it ends): faults apply there."""
    _local.function = function


def _in_loop_helper_thread() -> bool:
    """A thread a loop invocation started: its keeper, the one that deletes its batches
    (poller/loop/background_delete.py), or the one that receives ahead (poller/loop/receive_ahead.py)."""
    name = threading.current_thread().name
    return name == KEEPER_THREAD or name.startswith((DELETE_THREAD, RECEIVE_THREAD))


def _in_function() -> bool:
    return _invocation.get() is not None or getattr(_local, "function", None) is not None or _in_loop_helper_thread()


def _in_loop_invocation() -> bool:
    invocation = _invocation.get()
    function = invocation.function if invocation is not None else getattr(_local, "function", None)
    return str(function or "").endswith("-poller") or _in_loop_helper_thread()


class _Raw(io.BytesIO):
    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.getvalue()


def _error_response(request: Any, status: int, code: str, service: str, message: str) -> AWSResponse:
    namespace = {"dynamodb": "com.amazonaws.dynamodb.v20120810", "sqs": "com.amazonaws.sqs"}[service]
    body = json.dumps({"__type": f"{namespace}#{code}", "message": message}).encode()
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": code, "x-amzn-RequestId": "fault"}
    if service == "sqs":  # SQS's JSON protocol names the query-compatible code in this header
        headers["x-amzn-query-error"] = f"{code};{'Receiver' if status >= 500 else 'Sender'}"
    return AWSResponse(request.url, status, headers, _Raw(body))


def _before_send(request: Any, event_name: str = "", **_: Any) -> AWSResponse | None:
    invocation = _invocation.get()
    if invocation is not None and invocation.killed.is_set():
        _park()  # first: even once the hook is uninstalled, a killed invocation reaches no AWS
    installed = _current
    if installed is None or not _in_function():
        return None
    service, operation = [*event_name.split("."), "", ""][1:3]
    plan = installed.plan
    if service == "sqs" and operation == "DeleteMessageBatch" and _in_loop_invocation() and plan.roll("crash"):
        body = json.loads(request.body or b"{}")
        plan.crashed_receipts.update(e["ReceiptHandle"] for e in body.get("Entries", []))
        if invocation is not None:
            invocation.kill()
            _park()
        raise InvocationCrashed(f"crash injected at {operation}")
    if service == "dynamodb" and plan.roll("throttle"):
        return _error_response(
            request, 400, "ProvisionedThroughputExceededException", service, "injected: rate of requests exceeded"
        )
    if service == "sqs" and plan.roll("sqs_error"):
        return _error_response(request, 500, "InternalError", service, "injected: internal error")
    return None


def _before_call(params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
    context["sandbox_params"] = params


def _after_call(http_response: Any, model: Any, context: dict[str, Any], **_: Any) -> None:
    installed = _current
    if installed is None or installed.trace is None or getattr(http_response, "status_code", 500) >= 300:
        return
    installed.trace.record(model.name, context.get("sandbox_params", {}))


_HANDLERS = (
    ("before-send", _before_send),
    ("before-parameter-build.dynamodb", _before_call),
    ("after-call.dynamodb", _after_call),
)


def install(plan: FaultPlan, trace: TokenTrace | None = None) -> None:
    """Hook every botocore session made from now on (and boto3's default one): PynamoDB makes a session
    per thread, so a builtin handler is the one place that reaches them all, as moto's own stubber does."""
    global _current
    _current = _Installed(plan, trace)
    _released.clear()
    LOGGER.addFilter(_DROP_KILLED)
    # First among the handlers: an in-process moto (tests) answers in before-send too, and the first
    # answer wins.
    for name, handler in _HANDLERS:
        if (name, handler, REGISTER_FIRST) not in botocore.handlers.BUILTIN_HANDLERS:
            botocore.handlers.BUILTIN_HANDLERS.append((name, handler, REGISTER_FIRST))
    import boto3

    if boto3.DEFAULT_SESSION is not None:
        for name, handler in _HANDLERS:
            emitter = boto3.DEFAULT_SESSION._session.get_component("event_emitter")
            emitter.register_first(name, handler, unique_id=f"sandbox-faults-{name}")


def uninstall() -> None:
    """Stop injecting and tracing; sessions made meanwhile keep a hook that now does nothing."""
    global _current
    _current = None
    release_killed()
    LOGGER.removeFilter(_DROP_KILLED)
    for name, handler in _HANDLERS:
        if (name, handler, REGISTER_FIRST) in botocore.handlers.BUILTIN_HANDLERS:
            botocore.handlers.BUILTIN_HANDLERS.remove((name, handler, REGISTER_FIRST))
    import boto3

    if boto3.DEFAULT_SESSION is not None:
        for name, _ in _HANDLERS:
            boto3.DEFAULT_SESSION._session.unregister(name, unique_id=f"sandbox-faults-{name}")
