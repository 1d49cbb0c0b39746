"""The config file (``queues.yml``): parsed once into frozen, validated objects.

Every error names the file, the dotted field and what was expected, so that a typo fails at deploy time
(the deployment renders from this same loader) and never in a running loop.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlparse

import yaml

from poller.exceptions import ConfigError, UnknownQueue
from poller.limits import LAMBDA_MAX_TIMEOUT_S, SQS_MAX_BATCH, SQS_MAX_VISIBILITY_S, SQS_MAX_WAIT_S

CONFIG_ENV = "SQS_LOOPS_CONFIG"
DEFAULT_CONFIG_FILE = "queues.yml"

RECURSE_RESERVE_S = 3
"""Time kept at the end of an invocation to delete the last batch and invoke the next step."""

KEEPER_MAX_INTERVAL_S = 10
"""While a handler runs, the keeper thread looks at the heartbeat at least this often (and at least every
half heartbeat interval)."""

_QUEUE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# SQS queue names: 1-80 of alphanumerics, hyphens and underscores; FIFO queues end in ".fifo".
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}(\.fifo)?$")
_ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
_DOTTED_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
# A Lambda function name (1-64 of letters, digits, '-', '_'), optionally ':qualifier' (alias or version), or
# its ARN (arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]).
_FUNCTION = re.compile(
    r"^(arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:function:)?[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]{1,128})?$"
)
TARGET_FIELDS = ("handler", "function", "http")
"""What a queue's messages go to: exactly one of these per queue."""

RATE_BURST_SHARE = 0.5
"""Each of a queue's loops may spend one dispatch unit ahead of its share; all of them together at most this
fraction of a second of ``rate_limit`` (so any 5-s window sees at most 1.1 x the limit: docs/downstream.md)."""


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
    """

    timeout_s: int = LAMBDA_MAX_TIMEOUT_S
    heartbeat_s: int = 75
    lease_margin_s: int = 20

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
    rate_limit: float | None = None  # messages a second, for all loops of the queue together
    concurrency: int = 1  # records of one batch dispatched at once inside a loop (1: the batch in one call)
    retry_backoff: RetryBackoff | None = None  # None: a failed message returns after its visibility timeout

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

    @property
    def max_dispatch_unit(self) -> int:
        """Messages one target call may carry under ``rate_limit``: 1 per record; for a whole batch, what keeps
        every loop's head start together within :data:`RATE_BURST_SHARE` s of the limit."""
        if self.rate_limit is None:
            return self.batch_size
        if self.per_record:
            return 1
        return max(1, min(self.batch_size, int(self.rate_limit * RATE_BURST_SHARE / self.max_loops)))

    @property
    def dlq_name(self) -> str | None:
        """The dead-letter queue's name: the one given, or ``<name>-dlq`` for a queue the stack creates."""
        if self.dlq is not None:
            return self.dlq.rstrip("/").rsplit("/", 1)[-1]
        return self.stack_dlq_name if self.create else None

    @property
    def stack_dlq_name(self) -> str:
        """The name a DLQ made for this queue gets: ``<name>-dlq`` (``<name>-dlq.fifo`` for FIFO)."""
        name = self.queue_name
        return f"{name.removesuffix('.fifo')}-dlq.fifo" if name.endswith(".fifo") else f"{name}-dlq"

    @property
    def queue_name(self) -> str:
        """The SQS queue name, whether the config gave a name or a URL."""
        return self.queue.rstrip("/").rsplit("/", 1)[-1]

    @property
    def queue_url_given(self) -> str | None:
        return self.queue if _is_url(self.queue) else None

    def queue_url(self, *, region: str, account_id: str) -> str:
        """The queue URL: the one given, or the name's URL in this account and region."""
        return self.queue_url_given or f"https://sqs.{region}.amazonaws.com/{account_id}/{self.queue}"

    def dlq_url(self, *, region: str, account_id: str) -> str | None:
        """The dead-letter queue's URL (given, or beside the queue), or None when the config names none."""
        if self.dlq is not None and _is_url(self.dlq):
            return self.dlq
        name = self.dlq_name
        return (
            None
            if name is None
            else self.queue_url(region=region, account_id=account_id).rsplit("/", 1)[0] + "/" + name
        )

    def matches_url(self, url: str) -> bool:
        """True when ``url`` is this queue: equal to the URL given, or ending in the name given."""
        given = self.queue_url_given
        if given is not None:
            return _normal_url(given) == _normal_url(url)
        return _url_queue_name(url) == self.queue


@dataclass(frozen=True)
class Config:
    """The whole config file. ``queues`` maps queue key to its config, in file order."""

    path: str
    poller: PollerSettings
    queues: Mapping[str, QueueConfig] = field(default_factory=lambda: MappingProxyType({}))

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


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$SQS_LOOPS_CONFIG`` if set, else ``queues.yml`` in the working directory (``/var/task`` in
    Lambda, the repository root locally)."""
    env = os.environ if environ is None else environ
    return Path(env.get(CONFIG_ENV) or DEFAULT_CONFIG_FILE)


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate a config file (default: :func:`config_path`)."""
    where = Path(path) if path is not None else config_path()
    try:
        text = where.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the config file: {exc.strerror or exc}") from exc
    return parse_config(text, source=str(where))


def parse_config(text: str, *, source: str = DEFAULT_CONFIG_FILE) -> Config:
    """Validate config text; ``source`` names it in errors."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}: not valid YAML{at}: {problem}") from exc
    return _Parser(source).config(data)


_QUEUE_FIELDS = {f for f in QueueConfig.__dataclass_fields__ if f != "key"}
_DEFAULTABLE_FIELDS = _QUEUE_FIELDS - {"queue", "dlq"}
_HTTP_FIELDS = {"url", "per", "timeout_s", "headers"}
_HTTP_PER = ("record", "batch")


class _Parser:
    """Turns the loaded YAML into :class:`Config`, naming each field by its dotted path in errors."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {where}: {message}")

    def mapping(self, value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {_show(value)}")
        for key in value:
            if key not in allowed:
                raise self.fail(f"{where}.{key}", f"unknown key; expected one of {', '.join(sorted(allowed))}")
        return value

    def integer(self, value: Any, where: str, low: int, high: int | None = None) -> int:
        # bool is an int in Python; "true" for a count is always a mistake.
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f">= {low}"
            raise self.fail(where, f"expected an integer {span}, got {_show(value)}")
        return value

    def config(self, data: Any) -> Config:
        if data is None:
            raise self.fail("queues", "the file is empty; expected a mapping with a 'queues' key")
        top = self.mapping(data, "(top level)", {"defaults", "queues", "poller"})
        poller = self.poller(top.get("poller", {}))
        defaults = self.mapping(top.get("defaults") or {}, "defaults", _DEFAULTABLE_FIELDS)
        queues_data = top.get("queues")
        if not isinstance(queues_data, dict) or not queues_data:
            raise self.fail("queues", f"expected a mapping of queue key to queue, got {_show(queues_data)}")
        queues = {}
        for key, raw in queues_data.items():
            if not isinstance(key, str) or not _QUEUE_KEY.match(key):
                raise self.fail(
                    f"queues.{key}", "a queue key is 1-64 letters, digits, '-' or '_', starting alphanumeric"
                )
            where = f"queues.{key}"
            own = self.mapping(raw, where, _QUEUE_FIELDS)
            # A queue that names its own target replaces the defaults' target rather than adding a second.
            inherited = {
                k: v for k, v in defaults.items() if k not in TARGET_FIELDS or not own.keys() & set(TARGET_FIELDS)
            }
            merged = {**inherited, **own}
            queues[key] = self.queue(key, merged, where, poller)
        self.no_shared_queues(queues)
        return Config(path=self.source, poller=poller, queues=MappingProxyType(queues))

    def poller(self, raw: Any) -> PollerSettings:
        data = self.mapping(raw, "poller", set(PollerSettings.__dataclass_fields__))
        base = PollerSettings()
        timeout = self.integer(data.get("timeout_s", base.timeout_s), "poller.timeout_s", 1, LAMBDA_MAX_TIMEOUT_S)
        heartbeat = self.integer(data.get("heartbeat_s", base.heartbeat_s), "poller.heartbeat_s", 1)
        if heartbeat >= timeout:
            raise self.fail("poller.heartbeat_s", f"must be below poller.timeout_s ({timeout}), got {heartbeat}")
        margin = self.integer(data.get("lease_margin_s", base.lease_margin_s), "poller.lease_margin_s", 1)
        settings = PollerSettings(timeout_s=timeout, heartbeat_s=heartbeat, lease_margin_s=margin)
        if margin < settings.keeper_interval_s:
            # While a handler runs, a heartbeat can be a keeper interval late: the margin must cover it.
            raise self.fail(
                "poller.lease_margin_s", f"must be at least the keeper interval ({settings.keeper_interval_s:g} s)"
            )
        return settings

    def queue(self, key: str, data: dict[str, Any], where: str, poller: PollerSettings) -> QueueConfig:
        base = QueueConfig(key=key, queue="", handler="")
        queue = data.get("queue")
        if not isinstance(queue, str) or not _valid_queue(queue):
            raise self.fail(
                f"{where}.queue",
                "expected an SQS queue name (1-80 letters, digits, '-' or '_', optional '.fifo') or a queue "
                f"URL like https://sqs.<region>.amazonaws.com/<account>/<name>, got {_show(queue)}",
            )
        named = [name for name in TARGET_FIELDS if data.get(name) is not None]
        if len(named) > 1:
            raise self.fail(
                f"{where}.{named[1]}", f"a queue has exactly one target; it already has {named[0]!r} (choose one)"
            )
        handler = data.get("handler")
        if (not named or handler is not None) and (not isinstance(handler, str) or not _DOTTED_PATH.match(handler)):
            raise self.fail(
                f"{where}.handler",
                "expected a dotted path to a function, like app.orders.handle (or give 'function' or 'http' "
                f"instead), got {_show(handler)}",
            )
        min_loops = self.integer(data.get("min_loops", base.min_loops), f"{where}.min_loops", 0)
        max_loops = self.integer(data.get("max_loops", base.max_loops), f"{where}.max_loops", 1)
        if min_loops > max_loops:
            raise self.fail(f"{where}.min_loops", f"must not exceed max_loops ({max_loops}), got {min_loops}")
        settings = QueueConfig(
            key=key,
            queue=queue,
            handler=handler,
            min_loops=min_loops,
            max_loops=max_loops,
            scale_steps=self.scale_steps(data.get("scale_steps", []), f"{where}.scale_steps", min_loops, max_loops),
            batch_size=self.integer(data.get("batch_size", base.batch_size), f"{where}.batch_size", 1, SQS_MAX_BATCH),
            wait_time_s=self.integer(
                data.get("wait_time_s", base.wait_time_s), f"{where}.wait_time_s", 1, SQS_MAX_WAIT_S
            ),
            visibility_timeout_s=self.integer(
                data.get("visibility_timeout_s", base.visibility_timeout_s),
                f"{where}.visibility_timeout_s",
                # Extended every third of itself while a handler runs: below 3 s that is sub-second churn.
                3,
                SQS_MAX_VISIBILITY_S,
            ),
            handler_timeout_s=self.integer(
                data.get("handler_timeout_s", base.handler_timeout_s), f"{where}.handler_timeout_s", 1
            ),
        )
        settings = self.queue_resources(settings, data, where)
        settings = self.downstream(settings, data, where)
        needed = settings.wait_time_s + settings.handler_timeout_s + RECURSE_RESERVE_S
        if needed > poller.timeout_s:
            raise self.fail(
                f"{where}.handler_timeout_s",
                f"wait_time_s ({settings.wait_time_s}) + handler_timeout_s ({settings.handler_timeout_s}) + "
                f"{RECURSE_RESERVE_S} s to recurse must fit in poller.timeout_s ({poller.timeout_s})",
            )
        return settings

    def queue_resources(self, settings: QueueConfig, data: dict[str, Any], where: str) -> QueueConfig:
        """The keys that say what the stack makes around the queue: ``create``, ``max_receive_count``, ``dlq``."""
        create = data.get("create", False)
        if not isinstance(create, bool):
            raise self.fail(f"{where}.create", f"expected true or false, got {_show(create)}")
        if create and settings.queue_url_given:
            raise self.fail(
                f"{where}.create", "the stack creates queues by name in its own account; give a name, not a URL"
            )
        # SQS allows maxReceiveCount from 1 to 1000.
        receives = self.integer(data.get("max_receive_count", 5), f"{where}.max_receive_count", 1, 1000)
        dlq = data.get("dlq")
        if dlq is not None:
            if create:
                raise self.fail(f"{where}.dlq", "a queue the stack creates gets its DLQ from the stack (<name>-dlq)")
            if not isinstance(dlq, str) or not _valid_queue(dlq):
                raise self.fail(f"{where}.dlq", f"expected an SQS queue name or URL, got {_show(dlq)}")
        return replace(settings, create=create, max_receive_count=receives, dlq=dlq)

    def downstream(self, settings: QueueConfig, data: dict[str, Any], where: str) -> QueueConfig:
        """The keys that protect what sits downstream: the target (``function``, ``http``), ``rate_limit``,
        ``concurrency`` and ``retry_backoff`` (docs/downstream.md)."""
        function = data.get("function")
        if function is not None and (not isinstance(function, str) or not _FUNCTION.match(function)):
            raise self.fail(
                f"{where}.function",
                "expected a Lambda function name (optionally name:alias) or its ARN, got " + _show(function),
            )
        http = None if data.get("http") is None else self.http_target(data["http"], f"{where}.http", settings)
        rate = data.get("rate_limit")
        if rate is not None:
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate < math.inf:
                raise self.fail(f"{where}.rate_limit", f"expected messages a second > 0, got {_show(rate)}")
            rate = float(rate)
        concurrency = self.integer(data.get("concurrency", 1), f"{where}.concurrency", 1, settings.batch_size)
        if concurrency > 1 and settings.queue_name.endswith(".fifo"):
            raise self.fail(
                f"{where}.concurrency",
                "must be 1 on a FIFO queue: records in parallel would break the order in a group",
            )
        if http is not None and http.per == "batch" and concurrency > 1:
            raise self.fail(
                f"{where}.concurrency", "http per: batch sends the batch in one request; concurrency must be 1"
            )
        out = replace(
            settings,
            function=function,
            http=http,
            rate_limit=rate,
            concurrency=concurrency,
            retry_backoff=self.retry_backoff(data.get("retry_backoff"), f"{where}.retry_backoff"),
        )
        if rate is not None and rate * RATE_BURST_SHARE < out.max_loops:
            # Every loop may spend one call ahead of its share: max_loops of them must fit in half a second
            # of the limit, or a 5-s window could see more than 1.1 x the limit.
            raise self.fail(
                f"{where}.rate_limit",
                f"{rate:g} a second shared by up to max_loops ({out.max_loops}) loops: keep rate_limit >= 2 x "
                "max_loops (lower max_loops, or use concurrency within fewer loops)",
            )
        return out

    def http_target(self, raw: Any, where: str, settings: QueueConfig) -> HttpTarget:
        data = {"url": raw} if isinstance(raw, str) else self.mapping(raw, where, _HTTP_FIELDS)
        url = data.get("url")
        parsed = urlparse(url) if isinstance(url, str) else None
        if not isinstance(url, str) or parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
            at = where if isinstance(raw, str) else f"{where}.url"
            raise self.fail(at, f"expected an http:// or https:// URL, got {_show(url)}")
        per = data.get("per", "record")
        if per not in _HTTP_PER:
            raise self.fail(f"{where}.per", f"expected one of {', '.join(_HTTP_PER)}, got {_show(per)}")
        timeout = data.get("timeout_s", min(HttpTarget.timeout_s, settings.handler_timeout_s))
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout <= settings.handler_timeout_s
        ):
            raise self.fail(
                f"{where}.timeout_s",
                f"expected seconds > 0 and at most handler_timeout_s ({settings.handler_timeout_s}), got {_show(timeout)}",
            )
        headers: Any = data.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise self.fail(f"{where}.headers", f"expected a mapping of header name to text, got {_show(headers)}")
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise self.fail(f"{where}.headers", f"{_show(name)} is not an HTTP header name (RFC 9110 token)")
            if not _HEADER_VALUE.fullmatch(value):
                raise self.fail(
                    f"{where}.headers.{name}",
                    "expected Latin-1 text without line breaks or surrounding spaces (what HTTP can carry)",
                )
        return HttpTarget(url=url, per=per, timeout_s=float(timeout), headers=MappingProxyType(dict(headers)))

    def retry_backoff(self, raw: Any, where: str) -> RetryBackoff | None:
        if raw is None or raw is False:
            return None
        data = {} if raw is True else self.mapping(raw, where, {"base_s", "max_s"})
        base = RetryBackoff()
        # Visibility timeouts are whole seconds up to SQS's 12 h.
        base_s = self.integer(data.get("base_s", base.base_s), f"{where}.base_s", 1, SQS_MAX_VISIBILITY_S)
        max_s = self.integer(data.get("max_s", max(base.max_s, base_s)), f"{where}.max_s", base_s, SQS_MAX_VISIBILITY_S)
        return RetryBackoff(base_s=base_s, max_s=max_s)

    def scale_steps(self, raw: Any, where: str, min_loops: int, max_loops: int) -> tuple[ScaleStep, ...]:
        if not isinstance(raw, list):
            raise self.fail(where, f"expected a list of {{depth, loops}}, got {_show(raw)}")
        steps: list[ScaleStep] = []
        for n, item in enumerate(raw):
            at = f"{where}[{n}]"
            data = self.mapping(item, at, {"depth", "loops"})
            for needed in ("depth", "loops"):
                if needed not in data:
                    raise self.fail(f"{at}.{needed}", "missing")
            step = ScaleStep(
                depth=self.integer(data["depth"], f"{at}.depth", 1),
                loops=self.integer(data["loops"], f"{at}.loops", max(min_loops, 1), max_loops),
            )
            if steps and step.depth <= steps[-1].depth:
                raise self.fail(
                    f"{at}.depth", f"steps must be in ascending depth; {step.depth} follows {steps[-1].depth}"
                )
            if steps and step.loops < steps[-1].loops:
                raise self.fail(
                    f"{at}.loops", f"a deeper step cannot want fewer loops ({step.loops} < {steps[-1].loops})"
                )
            steps.append(step)
        return tuple(steps)

    def no_shared_queues(self, queues: dict[str, QueueConfig]) -> None:
        # Two keys on one queue would double its loops and make a loop event's queue ambiguous.
        seen: dict[str, str] = {}
        for key, queue in queues.items():
            identity = _normal_url(queue.queue_url_given) if queue.queue_url_given else queue.queue_name
            if identity in seen:
                raise self.fail(f"queues.{key}.queue", f"{queue.queue!r} is already the queue of {seen[identity]!r}")
            seen[identity] = key


def _is_url(value: str) -> bool:
    return value.startswith(("https://", "http://"))


def _valid_queue(value: str) -> bool:
    if not _is_url(value):
        return bool(_QUEUE_NAME.match(value))
    parsed = urlparse(value)
    parts = [p for p in parsed.path.split("/") if p]
    return (
        bool(parsed.netloc)
        and len(parts) == 2
        and bool(_ACCOUNT_ID.match(parts[0]))
        and bool(_QUEUE_NAME.match(parts[1]))
    )


def _normal_url(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.netloc.lower()}{parsed.path.rstrip('/')}"


def _url_queue_name(url: str) -> str:
    return urlparse(url).path.rstrip("/").rsplit("/", 1)[-1]


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"([\x21-\x7e\x80-\xff]([\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
