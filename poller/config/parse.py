"""The config file (``queues.yml``): read once, at cold start or deploy time, into the frozen objects of
:mod:`poller.config.model`. A typo fails at deploy time (the deployment renders from this same loader) and
never in a running loop.

The YAML file is the contract. The deployment package also holds its JSON form (:func:`rendered_form`,
written beside it as ``<file>.json`` by deploy/artifact.py): the same data, keyed by the YAML text's
SHA-256, so a cold start reads it with the standard library's json instead of importing and running PyYAML
(about 12 ms of import and a few ms of parsing on the runtime's Python). Both go through the same
validation; a JSON form that does not match the YAML beside it is ignored."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from poller.aws.limits import (
    LAMBDA_MAX_TIMEOUT_S,
    SQS_MAX_BATCH,
    SQS_MAX_RETENTION_S,
    SQS_MAX_VISIBILITY_S,
    SQS_MAX_WAIT_S,
)
from poller.config.checks import (
    batch_fits_invocation,
    lease_covers_keeper,
    no_shared_queues,
    queues_in_region,
    reserved_covers_loops,
    sends_to_known_queues,
)
from poller.config.downstream import DownstreamFields
from poller.config.fields import queue_name_or_url
from poller.config.model import TARGET_FIELDS, Config, PollerSettings, QueueConfig, ScaleStep
from poller.config.shared_parse import SharedFields
from poller.exceptions import ConfigError, shown

CONFIG_ENV = "SQS_LOOPS_CONFIG"
DEFAULT_CONFIG_FILE = "queues.yml"
RENDERED_SUFFIX = ".json"
"""The config's JSON form sits beside it, named ``<file><suffix>`` (``queues.yml.json``)."""

LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
"""Lambda's ApplicationLogLevel values (LoggingConfig of the JSON log format)."""
# A KMS key ARN (key/<id>) or alias ARN (alias/<name>); SQS takes either as KmsMasterKeyId.
_KMS_KEY = re.compile(
    r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key/[A-Za-z0-9-]{1,128}|alias/[A-Za-z0-9/_-]{1,250})$"
)
# A Lambda alias name: 1-128 letters, digits, '-' or '_', not only digits (that is a version).
_ALIAS = re.compile(r"^(?!^[0-9]+$)[A-Za-z0-9_-]{1,128}$")
_QUEUE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_DOTTED_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_QUEUE_FIELDS = {f for f in QueueConfig.__dataclass_fields__ if f not in ("key", "shared")}
_DEFAULTABLE_FIELDS = _QUEUE_FIELDS - {"queue", "dlq"}


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$SQS_LOOPS_CONFIG`` if set, else ``queues.yml`` in the working directory (``/var/task`` in
    Lambda, the repository root locally)."""
    env = os.environ if environ is None else environ
    return Path(env.get(CONFIG_ENV) or DEFAULT_CONFIG_FILE)


def load_config(path: str | os.PathLike[str] | None = None, *, region: str | None = None) -> Config:
    """Read and validate a config file (default: :func:`config_path`). With ``region`` (the deployment's),
    a queue, DLQ or KMS key of another region is refused (:func:`~poller.config.checks.queues_in_region`).
    The file's JSON form (:func:`rendered_form`), when it sits beside it and matches it, is read instead
    of parsing the YAML."""
    where = Path(path) if path is not None else config_path()
    try:
        text = where.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the config file: {exc.strerror or exc}") from exc
    data = _rendered_data(text, where.with_name(where.name + RENDERED_SUFFIX))
    config = parse_config(text, source=str(where)) if data is None else _Parser(str(where)).config(data[0])
    if region is not None:
        queues_in_region(config, region)
    return config


def parse_config(text: str, *, source: str = DEFAULT_CONFIG_FILE) -> Config:
    """Validate config text; ``source`` names it in errors."""
    return _Parser(source).config(_yaml_data(text, source))


def rendered_form(text: str, *, source: str = DEFAULT_CONFIG_FILE) -> str | None:
    """The JSON form of config text, to ship beside it: its data and the text's SHA-256. None when JSON
    cannot hold the data as YAML gave it (a date, a key that is not a string): the YAML is read then."""
    data = _yaml_data(text, source)
    try:
        rendered = json.dumps({"sha256": _digest(text), "data": data}, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return rendered if json.loads(rendered)["data"] == data else None


def _rendered_data(text: str, rendered: Path) -> tuple[Any] | None:
    """The data of ``rendered`` (in a 1-tuple: the data may be None) if it is the JSON form of ``text``."""
    try:
        form = json.loads(rendered.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # none (a checkout, the sandbox) or unreadable: the YAML is the contract
    if not isinstance(form, dict) or form.get("sha256") != _digest(text) or "data" not in form:
        return None  # rendered from another version of the file
    return (form["data"],)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _yaml_data(text: str, source: str) -> Any:
    import yaml  # here, not at the top: a deployed function reads the JSON form and never needs PyYAML

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}: not valid YAML{at}: {problem}") from exc


class _Parser(DownstreamFields, SharedFields):
    """Turns the loaded YAML into :class:`Config`, naming each field by its dotted path in errors."""

    def config(self, data: Any) -> Config:
        if data is None:
            raise self.fail("queues", "the file is empty; expected a mapping with a 'queues' key")
        top = self.mapping(data, "(top level)", {"defaults", "queues", "poller", "downstreams"})
        downstreams = self.downstreams(top.get("downstreams"))
        poller = self.poller(top.get("poller", {}))
        defaults = self.mapping(top.get("defaults") or {}, "defaults", _DEFAULTABLE_FIELDS)
        queues_data = top.get("queues")
        if not isinstance(queues_data, dict) or not queues_data:
            raise self.fail("queues", f"expected a mapping of queue key to queue, got {shown(queues_data)}")
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
        no_shared_queues(queues, self.fail)
        sends_to_known_queues(queues, self.fail)
        reserved_covers_loops(poller, queues, self.fail)
        queues = self.resolve(queues, downstreams)
        return Config(path=self.source, poller=poller, queues=MappingProxyType(queues), downstreams=downstreams)

    def poller(self, raw: Any) -> PollerSettings:
        data = self.mapping(raw, "poller", set(PollerSettings.__dataclass_fields__))
        base = PollerSettings()
        timeout = self.integer(data.get("timeout_s", base.timeout_s), "poller.timeout_s", 1, LAMBDA_MAX_TIMEOUT_S)
        heartbeat = self.integer(data.get("heartbeat_s", base.heartbeat_s), "poller.heartbeat_s", 1)
        margin = self.integer(data.get("lease_margin_s", base.lease_margin_s), "poller.lease_margin_s", 1)
        switches = {}
        for name in ("tracing", "metrics", "depth_reads", "limit_cap"):
            switches[name] = data.get(name, getattr(base, name))
            if not isinstance(switches[name], bool):
                raise self.fail(f"poller.{name}", f"expected true or false, got {shown(switches[name])}")
        level = data.get("log_level", base.log_level)
        if level not in LOG_LEVELS:
            raise self.fail("poller.log_level", f"expected one of {', '.join(LOG_LEVELS)}, got {shown(level)}")
        reserved = data.get("reserved_concurrency")
        if reserved is not None:
            reserved = self.integer(reserved, "poller.reserved_concurrency", 1)
        aliases = data.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) and _ALIAS.match(a) for a in aliases):
            raise self.fail("poller.aliases", f"expected a list of Lambda alias names, got {shown(aliases)}")
        settings = PollerSettings(
            timeout_s=timeout,
            aliases=tuple(aliases),
            heartbeat_s=heartbeat,
            lease_margin_s=margin,
            log_level=level,
            reserved_concurrency=reserved,
            **switches,
        )
        lease_covers_keeper(settings, self.fail)
        return settings

    def queue(self, key: str, data: dict[str, Any], where: str, poller: PollerSettings) -> QueueConfig:
        base = QueueConfig(key=key, queue="", handler="")
        queue = data.get("queue")
        if not isinstance(queue, str) or queue_name_or_url(queue) is None:
            raise self.fail(
                f"{where}.queue",
                "expected an SQS queue name (1-80 letters, digits, '-' or '_', optional '.fifo') or a queue "
                f"URL like https://sqs.<region>.amazonaws.com/<account>/<name>, got {shown(queue)}",
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
                f"instead), got {shown(handler)}",
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
            # Up to a day: longer would keep a woken queue's loops (and their cost) for nothing.
            scale_in_cooldown_s=self.integer(
                data.get("scale_in_cooldown_s", base.scale_in_cooldown_s), f"{where}.scale_in_cooldown_s", 0, 86400
            ),
        )
        settings = self.queue_resources(settings, data, where)
        settings = self.shared(self.downstream(settings, data, where), data, where)
        batch_fits_invocation(settings, poller, where, self.fail)
        return settings

    def queue_resources(self, settings: QueueConfig, data: dict[str, Any], where: str) -> QueueConfig:
        """The keys that say what the stack makes around the queue: ``create``, ``max_receive_count``, ``dlq``,
        ``max_age_s`` (its age alarm), ``kms_key`` (its encryption key's permissions)."""
        create = data.get("create", False)
        if not isinstance(create, bool):
            raise self.fail(f"{where}.create", f"expected true or false, got {shown(create)}")
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
            if queue_name_or_url(dlq) is None:
                raise self.fail(f"{where}.dlq", f"expected an SQS queue name or URL, got {shown(dlq)}")
        max_age = data.get("max_age_s")
        if max_age is not None:
            # SQS keeps a message at most 14 days: an older limit could never fire.
            max_age = self.integer(max_age, f"{where}.max_age_s", 1, SQS_MAX_RETENTION_S)
        kms_key = data.get("kms_key")
        if kms_key is not None and (not isinstance(kms_key, str) or not _KMS_KEY.match(kms_key)):
            raise self.fail(
                f"{where}.kms_key",
                "expected the ARN of a KMS key (arn:aws:kms:<region>:<account>:key/<id>) or of an alias "
                f"(...:alias/<name>), got {shown(kms_key)}",
            )
        sends_to = data.get("sends_to", [])
        if not isinstance(sends_to, list) or not all(isinstance(k, str) and _QUEUE_KEY.match(k) for k in sends_to):
            raise self.fail(f"{where}.sends_to", f"expected a list of queue keys of this file, got {shown(sends_to)}")
        return replace(
            settings,
            create=create,
            max_receive_count=receives,
            dlq=dlq,
            max_age_s=max_age,
            kms_key=kms_key,
            sends_to=tuple(dict.fromkeys(sends_to)),
        )

    def scale_steps(self, raw: Any, where: str, min_loops: int, max_loops: int) -> tuple[ScaleStep, ...]:
        if not isinstance(raw, list):
            raise self.fail(where, f"expected a list of {{depth, loops}}, got {shown(raw)}")
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
