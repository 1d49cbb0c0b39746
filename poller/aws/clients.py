"""The loop's AWS clients and their time budgets, named with the reason. botocore's own retries stay short:
our retry policy (poller/aws/retry.py), which knows the invocation's deadline, sits on top of them.

boto3 is imported when a client is first made, not when this module is: a cold start pays for it once, on
the first invocation that needs it. Every client here is made from boto3's default botocore session, and so
is the token table's (:func:`share_default_session`): a session loads and parses botocore's data files
(the endpoints, the service models) once, where each further session would load them again."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

# Every call's worst case is (connect + read) x botocore's attempts: a loop step checks that it fits before it
# starts one near its deadline (poller/timing.py), so a hung endpoint costs time but never the next step.

SQS_CONNECT_TIMEOUT_S = 1
"""Connecting to SQS in the function's region takes milliseconds; one lost SYN (a 1-s retransmit) is where we
stop and let a retry take a fresh connection."""

SQS_READ_TIMEOUT_S = 2
"""Every SQS call but the long poll (delete, change visibility, attributes) answers in milliseconds."""

SQS_MAX_ATTEMPTS = 2
"""botocore's attempts per short SQS call, before our own retry policy (which knows the deadline) decides."""

SQS_RECEIVE_GRACE_S = 1
"""A long poll's read timeout is its ``WaitTimeSeconds`` plus this: SQS answers when the wait ends."""

SQS_RECEIVE_MAX_ATTEMPTS = 1
"""botocore does not retry a receive (a retry waits a whole poll again): our retry does, within the deadline,
and on a FIFO queue with the same ReceiveRequestAttemptId."""

INVOKE_CONNECT_TIMEOUT_S = 1
INVOKE_READ_TIMEOUT_S = 1
"""An async Invoke answers 202 within milliseconds; these keep the recursion inside the time kept for it
(:data:`~poller.timing.RECURSE_RESERVE_S`)."""

INVOKE_MAX_ATTEMPTS = 1
"""botocore does not retry the recursion's Invoke; the loop does, while the time allows (a retried Invoke may
deliver twice, which the claim fences)."""

TOKEN_CONNECT_TIMEOUT_S = 1
TOKEN_READ_TIMEOUT_S = 1
"""The token table's conditional writes answer in milliseconds (PynamoDB's own defaults, 15 s and 30 s, would
outlast the recursion reserve many times over)."""

TOKEN_RETRIES = 0
"""PynamoDB's retries (botocore attempts - 1) per token-table call: none, so one call fits in what a step keeps
besides its reserve (2 s at worst; a heartbeat before a receive has at least a batch's budget + 1 s of it);
the loop's own retry policy, which knows the deadline, retries throttling and timeouts."""

CONTROL_CONNECT_TIMEOUT_S = 2
CONTROL_READ_TIMEOUT_S = 5
CONTROL_MAX_ATTEMPTS = 3
"""The scale functions' and restart's clients (CloudWatch, Lambda, SQS, the token table): 3 x 7 s + 3 s of
backoff at worst per call, so a hung endpoint fails a call inside restart's 50-s timeout (botocore's defaults,
60 s read, and PynamoDB's, 30 s read x 4, do not)."""


def worst_call_s(connect_s: float, read_s: float, attempts: int) -> float:
    """The longest one call can take: every attempt connecting and reading to its timeout, plus botocore's
    backoff between attempts (at most 1 s after the first in standard mode, doubling)."""
    return attempts * (connect_s + read_s) + sum(min(20.0, 2.0**n) for n in range(attempts - 1))


SQS_CALL_WORST_S = worst_call_s(SQS_CONNECT_TIMEOUT_S, SQS_READ_TIMEOUT_S, SQS_MAX_ATTEMPTS)
INVOKE_CALL_WORST_S = worst_call_s(INVOKE_CONNECT_TIMEOUT_S, INVOKE_READ_TIMEOUT_S, INVOKE_MAX_ATTEMPTS)
TOKEN_CALL_WORST_S = worst_call_s(TOKEN_CONNECT_TIMEOUT_S, TOKEN_READ_TIMEOUT_S, 1 + TOKEN_RETRIES)


def receive_worst_s(wait_s: int) -> float:
    """The longest a long poll of ``wait_s`` seconds can take (connect, the wait, the grace)."""
    return SQS_CONNECT_TIMEOUT_S + wait_s + SQS_RECEIVE_GRACE_S


SQS_VALIDATES_PARAMETERS = False
"""The loop's SQS clients send without botocore's parameter validation, as PynamoDB's client does: it walks
every parameter against the operation's shapes on each call (a receive and a delete per batch: a few percent
of a batch's CPU, docs/benchmarks.md), for parameters whose shapes our code fixes and whose values the config
validated at cold start; SQS checks them again anyway. What validation would also catch, a parameter this
botocore does not know (silently left out without it), is ruled out by the floor on boto3 in
pyproject.toml (the first that knows ``MessageSystemAttributeNames``)."""


def sqs_client(region: str) -> Any:
    """For SQS's short calls (delete, visibility, attributes)."""
    return _client(
        "sqs", region, SQS_CONNECT_TIMEOUT_S, SQS_READ_TIMEOUT_S, SQS_MAX_ATTEMPTS, validate=SQS_VALIDATES_PARAMETERS
    )


def sqs_receive_client(region: str, wait_s: int) -> Any:
    """For long polls of ``wait_s`` seconds: botocore has no per-call timeout, and a long poll's read timeout
    must follow its wait, so one client per wait (the caller keeps them for the warm container)."""
    return _client(
        "sqs",
        region,
        SQS_CONNECT_TIMEOUT_S,
        wait_s + SQS_RECEIVE_GRACE_S,
        SQS_RECEIVE_MAX_ATTEMPTS,
        validate=SQS_VALIDATES_PARAMETERS,
    )


def async_lambda_client(region: str) -> Any:
    return _client("lambda", region, INVOKE_CONNECT_TIMEOUT_S, INVOKE_READ_TIMEOUT_S, INVOKE_MAX_ATTEMPTS)


def control_client(service: str, region: str, *, pool: int | None = None) -> Any:
    """A client of the control plane (scale_up, scale_down, restart); ``pool``: connections for that many
    threads sharing it (botocore's default is 10)."""
    return _client(service, region, CONTROL_CONNECT_TIMEOUT_S, CONTROL_READ_TIMEOUT_S, CONTROL_MAX_ATTEMPTS, pool)


def token_table_settings(*, in_loop: bool) -> dict[str, Any]:
    """PynamoDB ``Meta`` settings of the token table: a loop step's (``in_loop``), or the control plane's
    (the scale functions, restart, the CLI: the override rows beside the tokens too)."""
    if in_loop:
        return {
            "connect_timeout_seconds": TOKEN_CONNECT_TIMEOUT_S,
            "read_timeout_seconds": TOKEN_READ_TIMEOUT_S,
            "max_retry_attempts": TOKEN_RETRIES,
        }
    return {
        "connect_timeout_seconds": CONTROL_CONNECT_TIMEOUT_S,
        "read_timeout_seconds": CONTROL_READ_TIMEOUT_S,
        "max_retry_attempts": CONTROL_MAX_ATTEMPTS - 1,
    }


class ClientOnFirstUse:
    """A boto3 client made by ``make()`` on its first call, not before: a cold start whose code never calls
    it never pays for it (a DynamoDB client is about 10 ms of one). Thread-safe: one client is made."""

    def __init__(self, make: Callable[[], Any]):
        self._make = make
        self._client: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:  # only for what the instance itself lacks: the client's methods
        with self._lock:
            if self._client is None:
                self._client = self._make()
        return getattr(self._client, name)


def default_session() -> Any:
    """boto3's default botocore session (made on first use), the one every client here comes from."""
    import boto3

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    return boto3.DEFAULT_SESSION._session


def share_default_session(model: Any) -> None:
    """Have a PynamoDB model's connection make its client from :func:`default_session`. PynamoDB makes a
    botocore session of its own (per thread), and a fresh session costs about 50 ms on a cold start (it
    lists botocore's data folders and parses endpoints.json, 1.2 MB, again: docs/benchmarks.md). Call it on
    the thread that makes the client (the claim's); the client is then shared by every thread. PynamoDB has
    no public way to pass a session: where its connection has no ``_local`` any more, nothing changes."""
    connection = model._get_connection().connection
    local = getattr(connection, "_local", None)
    if local is not None and getattr(local, "session", None) is None:
        local.session = default_session()


def _client(
    service: str,
    region: str,
    connect_s: float,
    read_s: float,
    attempts: int,
    pool: int | None = None,
    *,
    validate: bool = True,
) -> Any:
    import boto3
    from botocore.config import Config

    # total_max_attempts counts the first try (botocore's max_attempts counts only the retries).
    config = Config(
        retries={"mode": "standard", "total_max_attempts": attempts},
        connect_timeout=connect_s,
        read_timeout=read_s,
        parameter_validation=validate,
        **({} if pool is None else {"max_pool_connections": pool}),
    )
    return boto3.client(service, region_name=region, config=config)


DYNAMODB_CONNECT_TIMEOUT_S = 1
DYNAMODB_READ_TIMEOUT_S = 1
"""A run's counting write answers in milliseconds; past these it is retried (the write is idempotent)."""

DYNAMODB_MAX_ATTEMPTS = 1
"""botocore does not retry a run's write: the loop's retry policy does, within the deadline (one attempt, 2 s
at worst, is what a step checks it has left before the last one, after its recursion)."""

DYNAMODB_CALL_WORST_S = worst_call_s(DYNAMODB_CONNECT_TIMEOUT_S, DYNAMODB_READ_TIMEOUT_S, DYNAMODB_MAX_ATTEMPTS)

SNS_CONNECT_TIMEOUT_S = 2
SNS_READ_TIMEOUT_S = 5
SNS_MAX_ATTEMPTS = 3
"""A run's notice: a publish that fails past these is left to restart (poller/runs/notice.py)."""


def dynamodb_client(region: str) -> Any:
    return _client("dynamodb", region, DYNAMODB_CONNECT_TIMEOUT_S, DYNAMODB_READ_TIMEOUT_S, DYNAMODB_MAX_ATTEMPTS)


def sns_client(region: str) -> Any:
    return _client("sns", region, SNS_CONNECT_TIMEOUT_S, SNS_READ_TIMEOUT_S, SNS_MAX_ATTEMPTS)
