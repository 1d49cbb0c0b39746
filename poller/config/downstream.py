"""The config keys that protect what sits downstream: the target (``function``, ``http``), ``rate_limit``,
``concurrency`` and ``retry_backoff`` (docs/downstream.md)."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from types import MappingProxyType
from typing import Any
from urllib.parse import urlparse

from poller.aws.limits import SQS_MAX_VISIBILITY_S
from poller.config.fields import FieldReader
from poller.config.model import HttpTarget, QueueConfig, RetryBackoff
from poller.exceptions import shown

# A Lambda function name (1-64 of letters, digits, '-', '_'), optionally ':qualifier' (alias or version), or
# its ARN (arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]).
_FUNCTION = re.compile(
    r"^(arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:function:)?[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]{1,128})?$"
)
_HTTP_FIELDS = {"url", "per", "timeout_s", "headers"}
_HTTP_PER = ("record", "batch")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"([\x21-\x7e\x80-\xff]([\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?")


class DownstreamFields(FieldReader):
    def downstream(self, settings: QueueConfig, data: dict[str, Any], where: str) -> QueueConfig:
        """The keys that protect what sits downstream: the target (``function``, ``http``), ``rate_limit``,
        ``concurrency`` and ``retry_backoff`` (docs/downstream.md)."""
        function = data.get("function")
        if function is not None and (not isinstance(function, str) or not _FUNCTION.match(function)):
            raise self.fail(
                f"{where}.function",
                "expected a Lambda function name (optionally name:alias) or its ARN, got " + shown(function),
            )
        http = None if data.get("http") is None else self.http_target(data["http"], f"{where}.http", settings)
        rate = data.get("rate_limit")
        if rate is not None:
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate < math.inf:
                raise self.fail(f"{where}.rate_limit", f"expected messages a second > 0, got {shown(rate)}")
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
        return replace(
            settings,
            function=function,
            http=http,
            rate_limit=rate,
            concurrency=concurrency,
            retry_backoff=self.retry_backoff(data.get("retry_backoff"), f"{where}.retry_backoff"),
        )

    def http_target(self, raw: Any, where: str, settings: QueueConfig) -> HttpTarget:
        data = {"url": raw} if isinstance(raw, str) else self.mapping(raw, where, _HTTP_FIELDS)
        url = data.get("url")
        parsed = urlparse(url) if isinstance(url, str) else None
        if not isinstance(url, str) or parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
            at = where if isinstance(raw, str) else f"{where}.url"
            raise self.fail(at, f"expected an http:// or https:// URL, got {shown(url)}")
        per = data.get("per", "record")
        if per not in _HTTP_PER:
            raise self.fail(f"{where}.per", f"expected one of {', '.join(_HTTP_PER)}, got {shown(per)}")
        timeout = data.get("timeout_s", min(HttpTarget.timeout_s, settings.handler_timeout_s))
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout <= settings.handler_timeout_s
        ):
            raise self.fail(
                f"{where}.timeout_s",
                f"expected seconds > 0 and at most handler_timeout_s ({settings.handler_timeout_s}), got {shown(timeout)}",
            )
        headers: Any = data.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise self.fail(f"{where}.headers", f"expected a mapping of header name to text, got {shown(headers)}")
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise self.fail(f"{where}.headers", f"{shown(name)} is not an HTTP header name (RFC 9110 token)")
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
