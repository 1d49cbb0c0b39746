"""Forwarding to an HTTP endpoint: ``http: URL`` (or a mapping) in the config, with requests.

``per: record`` (the default) POSTs each record's body as it was sent to the queue, with the header
``X-Sqs-Message-Id``; ``per: batch`` POSTs the SQS-trigger event of the batch and honours a
``batchItemFailures`` answer. 2xx succeeds; 429 and 5xx fail for a retry after a backoff (at least what a
Retry-After header asks); any other status (a redirect too: it is not followed) fails at once toward the
dead-letter queue; a timeout or
connection error fails for a retry. No request goes out without a timeout, and none is retried by requests
itself (a retry would bypass the rate limit).
"""

from __future__ import annotations

import json
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from poller.config import HttpTarget
from poller.logs import log
from poller.sqs.records import failed_ids
from poller.targets.base import RETRY, Failure, Failures, all_failed, record_ids
from poller.timing import CONNECT_TIMEOUT_S

_RETRYABLE = frozenset({429}) | frozenset(range(500, 600))


def retry_after_s(value: str | None, now_epoch_s: float) -> float | None:
    """Seconds a Retry-After header asks for: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now_epoch_s)
    except (TypeError, ValueError):
        return None


class HttpForward:
    def __init__(self, target: HttpTarget):
        self.target = target
        self.timeout = (min(CONNECT_TIMEOUT_S, target.timeout_s), target.timeout_s)
        self._local = threading.local()  # a Session per thread: requests' Session is not thread-safe

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _bounded_post(self, body: bytes, headers: dict[str, str]) -> requests.Response:
        """POST within ``connect + timeout_s`` in all. requests' read timeout bounds each socket read, not
        the answer: a server that trickles its body keeps a request alive for ever. Once the headers are in,
        a timer shuts the connection down at the deadline (urllib3's ``shutdown``, which unblocks a read in
        progress; an older urllib3 without it leaves the per-read bound). The status line and headers are
        bounded per read only."""
        started = time.monotonic()
        deadline = started + self.timeout[0] + self.timeout[1]
        response = self._session().post(
            self.target.url,
            data=body,
            headers=headers,
            timeout=self.timeout,
            allow_redirects=False,  # a redirected POST becomes a GET without the body: fail it instead
            stream=True,
        )
        shutdown = getattr(response.raw, "shutdown", None)
        timer = threading.Timer(max(0.0, deadline - time.monotonic()), shutdown) if shutdown else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            response.content  # noqa: B018  # reads the body (now bounded): .json() and .content use it
        except requests.RequestException as exc:
            if time.monotonic() < deadline:
                raise
            raise requests.Timeout(f"no whole answer within {deadline - started:g} s") from exc
        finally:
            if timer is not None:
                timer.cancel()
            response.close()
        if time.monotonic() >= deadline:  # a shut-down answer may read as a short one: never trust it
            raise requests.Timeout(f"no whole answer within {deadline - started:g} s")
        return response

    def send(self, event: dict[str, Any], context: Any, log_fields: dict[str, object]) -> Failures:
        if self.target.per == "batch":
            return self._post(event, json.dumps(event).encode(), {"Content-Type": "application/json"}, log_fields)
        failures: dict[str, Failure] = {}
        for record in event["Records"]:
            one = {"Records": [record]}
            headers = {"Content-Type": "application/json", "X-Sqs-Message-Id": record["messageId"]}
            failures.update(self._post(one, record["body"].encode(), headers, log_fields))
        return failures

    def _post(
        self, event: dict[str, Any], body: bytes, headers: dict[str, str], log_fields: dict[str, object]
    ) -> Failures:
        ids = record_ids(event)
        try:
            response = self._bounded_post(body, {**headers, **self.target.headers})
        except requests.RequestException as exc:
            log("warning", "forward_failed", url=self.target.url, error=repr(exc), message_ids=ids, **log_fields)
            return all_failed(event)
        status = response.status_code
        if 200 <= status < 300:
            if self.target.per == "batch":
                return dict.fromkeys(failed_ids(_json_or_none(response), ids, log_fields=log_fields), RETRY)
            return {}
        wait = retry_after_s(response.headers.get("Retry-After"), time.time())
        failure = Failure(retry_after_s=wait) if status in _RETRYABLE else Failure(permanent=True)
        log(
            "warning",
            "forward_refused",
            url=self.target.url,
            status=status,
            retry_after_s=wait,
            location=response.headers.get("Location"),  # a 3xx: configure the URL it points to
            permanent=failure.permanent,
            message_ids=ids,
            **log_fields,
        )
        return all_failed(event, failure)


def _json_or_none(response: requests.Response) -> Any:
    """A 2xx body: JSON (maybe with batchItemFailures), or nothing (all succeeded)."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None
