"""The config's model: frozen objects made once at cold start by :mod:`poller.config.parse`. Durations are
in seconds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

from poller.aws.limits import LAMBDA_MAX_TIMEOUT_S, SQS_MAX_BATCH, SQS_MAX_WAIT_S
from poller.config.shared import Downstream
from poller.exceptions import UnknownQueue
from poller.sqs.queue_ref import QueueRef
from poller.timing import CONNECT_TIMEOUT_S, KEEPER_MAX_INTERVAL_S, RECEIVE_AHEAD_S

TARGET_FIELDS = ("handler", "function", "http")
"""What a queue's messages go to: exactly one of these per queue."""


@dataclass(frozen=True)
class ScaleStep:
    """One depth alarm: at ``depth`` messages (visible + in flight) or more, run ``loops`` loops."""

    depth: int
    loops: int


@dataclass(frozen=True)
class PollerSettings:
    """Settings of the one poller function that serves every queue.

    ``timeout_s``: the poller's Lambda timeout (default 900, 1-900); a loop recurses before it runs out.
    ``heartbeat_s``: a loop refreshes its token's ``last_used`` at least this often while alive
    (default 75: with 20 s long polls an idle loop then makes under 4 calls a minute, docs/benchmarks.md).
    ``lease_margin_s``: slack on top of heartbeat + longest long poll before restart may call a loop dead:
    covers slow AWS calls, retried heartbeats and clock skew between a loop and restart (default 20).
    ``tracing``: turn on X-Ray active tracing for the stack's functions (default false).
    ``metrics``: write metrics in EMF on the log lines (default true; each is a billed custom metric).
    ``log_level``: the functions' application log level in Lambda's JSON log format (default INFO).
    ``reserved_concurrency``: concurrent executions reserved for (and capping) the poller (default None:
    the account's unreserved pool). At least the sum of ``max_loops`` (docs/config.md#reserved-concurrency).
    ``aliases``: aliases of the poller that loops are started under; each gets the poller's async invoke
    config (no retries, a bounded event age) as ``$LATEST`` does (default none).
    ``depth_reads``: the control plane reads every queue's depth and loops ask for growth (default true;
    false is the alarm-only path, kept for comparisons: docs/scaling.md#two-paths).
    ``limit_cap``: a rate-limited queue wants no more loops than its limit keeps busy (default true; false is
    the rule without the cap, kept for comparisons: docs/scaling.md#limit-cap).
    """

    timeout_s: int = LAMBDA_MAX_TIMEOUT_S
    heartbeat_s: int = 75
    lease_margin_s: int = 20
    tracing: bool = False  # X-Ray active tracing on every function of the stack (deploy/render.py)
    metrics: bool = True  # metrics in EMF on the log lines (poller/metrics/), the dashboard's own graphs
    log_level: str = "INFO"  # Lambda's ApplicationLogLevel for every function (deploy/functions.py)
    reserved_concurrency: int | None = None  # the poller's ReservedConcurrentExecutions
    aliases: tuple[str, ...] = ()  # poller aliases loops may run under: each gets the async invoke config
    depth_reads: bool = True  # restart and scale_up read depths, loops ask for growth (docs/scaling.md)
    limit_cap: bool = True  # restart and scale_up cap a rate-limited queue (scaler/limit_cap.py)

    @property
    def keeper_interval_s(self) -> float:
        """The longest the keeper sleeps while a handler runs."""
        return min(KEEPER_MAX_INTERVAL_S, self.heartbeat_s / 2)


@dataclass(frozen=True)
class HttpTarget:
    """Forward to an HTTP endpoint: POST each record's body (``per: record``) or the SQS-trigger event of the
    batch (``per: batch``) to ``url``. ``timeout_s`` bounds each request (connect and read, seconds; default
    10, at most the queue's ``handler_timeout_s``)."""

    url: str
    per: str = "record"
    timeout_s: float = 10.0
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class RetryBackoff:
    """A failed message becomes visible again after ``min(max_s, base_s * 2 ** (receives - 1))`` seconds,
    drawn uniformly from ``base_s`` up to that ("jitter"), instead of after its visibility timeout."""

    base_s: int = 5
    max_s: int = 900

    def ceiling_s(self, receive_count: int) -> int:
        """The longest delay after the ``receive_count``-th receive (1-based)."""
        # 2 ** 16 * base already exceeds SQS's 12 h for any base >= 1: cap the exponent, not the float.
        return int(min(self.max_s, self.base_s * 2 ** min(max(receive_count, 1) - 1, 16)))


@dataclass(frozen=True)
class QueueConfig:
    """One queue and how its loops consume it. Durations are in seconds. Exactly one target: ``handler``
    (in-process), ``function`` (a Lambda invoked synchronously) or ``http`` (an endpoint)."""

    key: str
    queue: str
    handler: str | None = None
    function: str | None = None
    http: HttpTarget | None = None
    min_loops: int = 1
    max_loops: int = 10
    scale_steps: tuple[ScaleStep, ...] = ()
    batch_size: int = SQS_MAX_BATCH
    wait_time_s: int = SQS_MAX_WAIT_S
    visibility_timeout_s: int = 30
    handler_timeout_s: int = 60
    create: bool = False  # the stack creates the queue and its dead-letter queue
    max_receive_count: int = 5  # receives before SQS moves a message to the DLQ (queues the stack creates)
    dlq: str | None = None  # name or URL of an existing queue's DLQ (for its alarm and permissions)
    max_age_s: int | None = None  # alarm when the oldest message is older than this (None: no such alarm)
    rate_limit: float | None = None  # messages a second, for all loops of the queue together
    concurrency: int = 1  # records of one batch dispatched at once inside a loop (1: the batch in one call)
    retry_backoff: RetryBackoff | None = None  # None: a failed message returns after its visibility timeout
    kms_key: str | None = None  # ARN of the KMS key (or alias) the queue is encrypted with: IAM for that key
    # Keys of the configured queues its handler sends messages to (a pipeline's next stages): the poller's
    # role may send to them, and ``producer.queue_url`` resolves them inside the handler.
    sends_to: tuple[str, ...] = ()
    # Loops are added at once but removed only once the depth has stayed below their step this long
    # (docs/scaling.md#cool-down): 300 s, as Application Auto Scaling's and KEDA's default cool-downs.
    scale_in_cooldown_s: int = 300
    downstream: str | None = None  # the shared downstream (``downstreams:``) its messages go to
    weight: float = 1.0  # its share among busy queues of the same priority on that downstream
    priority: int = 0  # higher first on that downstream
    shared: Downstream | None = None  # the downstream named, resolved when the config loads (not a key)

    @property
    def limits(self) -> tuple[Downstream, ...]:
        """The rate limits its loops keep: its shared downstream's, and its own ``rate_limit`` as a private
        downstream (``queue:<key>``); with both, a call waits for a turn in each (the tighter holds)."""
        own = () if self.rate_limit is None else (Downstream.private(self.key, self.rate_limit),)
        return ((self.shared,) if self.shared is not None else ()) + own

    @property
    def batch_budget_s(self) -> float:
        """Seconds a loop keeps for one batch: ``handler_timeout_s``, plus a forwarding target's connect time,
        plus the wait for turns of a rate-limited queue dispatched record by record."""
        return (
            self.handler_timeout_s
            + (CONNECT_TIMEOUT_S if self.handler is None else 0)
            + (RECEIVE_AHEAD_S if self.limits and self.per_record else 0)
        )

    @property
    def per_record(self) -> bool:
        """Records go to the target one by one (each its own one-record event or request): with
        ``concurrency`` above 1, and for ``http`` with ``per: record``."""
        return self.concurrency > 1 or (self.http is not None and self.http.per == "record")

    @property
    def target(self) -> str:
        """The target, for logs: ``handler:<path>``, ``function:<name>`` or ``http:<url>``."""
        if self.function is not None:
            return f"function:{self.function}"
        if self.http is not None:
            return f"http:{self.http.url}"
        return f"handler:{self.handler}"

    @cached_property
    def ref(self) -> QueueRef:
        """The queue as the config names it (a name or a URL; checked when the config loads)."""
        return QueueRef.parse(self.queue)

    @property
    def dlq_name(self) -> str | None:
        """The dead-letter queue's name: the one given, or ``<name>-dlq`` for a queue the stack creates."""
        if self.dlq is not None:
            return QueueRef.parse(self.dlq).name
        return self.stack_dlq_name if self.create else None

    @property
    def known_max_receives(self) -> int | None:
        """Receives before SQS moves a message to the DLQ, as far as the config knows (None: it names no
        DLQ): the fallback when the queue's own redrive policy cannot be read."""
        return self.max_receive_count if self.dlq_name is not None else None

    @property
    def stack_dlq_name(self) -> str:
        """The name a DLQ made for this queue gets: ``<name>-dlq`` (``<name>-dlq.fifo`` for FIFO)."""
        name = self.queue_name
        return f"{name.removesuffix('.fifo')}-dlq.fifo" if name.endswith(".fifo") else f"{name}-dlq"

    @property
    def queue_name(self) -> str:
        """The SQS queue name, whether the config gave a name or a URL."""
        return self.ref.name

    @property
    def queue_url_given(self) -> str | None:
        return self.ref.url

    def queue_url(self, *, region: str, account_id: str) -> str:
        """The queue URL: the one given, or the name's URL in this account and region."""
        return self.ref.url_in(region=region, account_id=account_id)

    def dlq_ref(self) -> QueueRef | None:
        """The dead-letter queue (given, or beside the queue), or None when the config names none."""
        if self.dlq is not None and QueueRef.parse(self.dlq).url is not None:
            return QueueRef.parse(self.dlq)
        name = self.dlq_name
        return None if name is None else self.ref.beside(name)

    def dlq_url(self, *, region: str, account_id: str) -> str | None:
        """The dead-letter queue's URL (given, or beside the queue), or None when the config names none."""
        dlq = self.dlq_ref()
        return None if dlq is None else dlq.url_in(region=region, account_id=account_id)

    def matches_url(self, url: str) -> bool:
        """True when ``url`` is this queue: equal to the URL given, or ending in the name given."""
        return self.ref.names_queue(url)


@dataclass(frozen=True)
class Config:
    """The whole config file. ``queues`` maps queue key to its config, in file order."""

    path: str
    poller: PollerSettings
    queues: Mapping[str, QueueConfig] = field(default_factory=lambda: MappingProxyType({}))
    downstreams: Mapping[str, Downstream] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def stale_after_s(self) -> int:
        """Heartbeat age (seconds) past which a token counts as dead and restart may take it over:
        ``heartbeat_s`` + the longest configured long poll + ``lease_margin_s``. A healthy loop's heartbeat
        is never older than ``heartbeat_s`` plus one long poll (it heartbeats when due before every receive
        and every handler call, and from the keeper while a handler runs)."""
        longest_poll = max((q.wait_time_s for q in self.queues.values()), default=SQS_MAX_WAIT_S)
        return self.poller.heartbeat_s + longest_poll + self.poller.lease_margin_s

    def queue(self, key: str) -> QueueConfig:
        try:
            return self.queues[key]
        except KeyError:
            raise UnknownQueue(f"no queue with key {key!r} in {self.path}") from None

    def queue_for_url(self, url: str) -> QueueConfig:
        """The queue a loop event's ``queue_url`` belongs to."""
        for queue in self.queues.values():
            if queue.matches_url(url):
                return queue
        raise UnknownQueue(f"queue URL {url!r} matches no queue in {self.path}")
