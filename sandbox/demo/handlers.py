"""The demo pipeline's handlers (sandbox/demo/pipeline.py): ordinary SQS-trigger handlers that POST each
record to the one vendor API with requests, then send the next stage's messages (the record's
``children``) with the producer library. A body with ``"poison": true`` always fails, so it ends in the
dead-letter queue.

For reliability runs the demo gives them a :class:`~sandbox.faults.FaultPlan` (``configure``): per batch,
``handler_error`` makes the handler raise and ``slow`` makes it outlive the queue's visibility timeout.
Every successful handling is recorded (:data:`deliveries`), so that each duplicate can be traced to why
its message came back."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import requests

from poller.logs import log
from producer import queue_url, run_of, send_messages
from sandbox.faults import FaultPlan

VENDOR_ENV = "SQS_LOOPS_DEMO_VENDOR"
TIMEOUT_S = (2, 5)  # connect, read: a handler never waits on the vendor without bound

_local = threading.local()


class Poison(ValueError):
    """A body marked ``"poison": true``: it fails every time, by design (no log line: the DLQ shows it)."""


_lock = threading.Lock()
processed: Counter[str] = Counter()  # message id (from the body) -> times handled successfully


@dataclass(frozen=True)
class Delivery:
    """One successful handling of a message. Times are epoch seconds."""

    job_id: str  # the id in the body
    message_id: str
    receipt_handle: str
    receive_count: int
    started: float
    ended: float


deliveries: list[Delivery] = []


class InjectedHandlerError(RuntimeError):
    """The ``handler_error`` fault: the handler fails its whole batch."""


@dataclass
class _Settings:
    faults: FaultPlan | None = None
    slow_s: float = 0.0  # how long a slow batch takes: longer than the queue's visibility timeout


_settings = _Settings()


def reset() -> None:
    with _lock:
        processed.clear()
        deliveries.clear()
    configure(None)


def configure(faults: FaultPlan | None, *, slow_s: float = 0.0) -> None:
    """Inject ``faults`` (``handler_error``, ``slow``) into the handlers from now on; None for none."""
    _settings.faults, _settings.slow_s = faults, slow_s


def _session() -> requests.Session:
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    session: requests.Session = _local.session
    return session


def _sqs() -> Any:
    if not hasattr(_local, "sqs"):
        import boto3

        _local.sqs = boto3.client("sqs", region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    return _local.sqs


def _send_children(job: dict[str, Any], stage: str | None, record: dict[str, Any], context: Any) -> None:
    """The next stage's messages, into the record's run, before this record counts as done: a failure fails
    the record (it comes back, and its children are sent again: duplicates, never a loss). The stage is a
    queue key of the config, which lists it in the sending queue's ``sends_to``."""
    children = job.get("children") or []
    if stage is None or not children:
        return
    url = queue_url(stage, context)
    report = send_messages(_sqs(), url, [json.dumps(child) for child in children], run=run_of(record))
    if report.failed:
        raise RuntimeError(f"{len(report.failed)} of {len(children)} next-stage messages not sent")


def _post_each(event: dict[str, Any], context: Any, path: str, next_stage: str | None = None) -> dict[str, Any]:
    started = time.time()
    faults = _settings.faults
    if faults is not None and faults.roll("handler_error"):
        raise InjectedHandlerError(f"injected handler error for a batch of {len(event['Records'])}")
    if faults is not None and faults.roll("slow"):
        time.sleep(_settings.slow_s)
    failures = []
    for record in event["Records"]:
        try:
            job = json.loads(record["body"])
            if job.get("poison"):
                raise Poison(f"job {job.get('id')} is poison")
            response = _session().post(os.environ[VENDOR_ENV] + path, json=job, timeout=TIMEOUT_S)
            response.raise_for_status()
            _send_children(job, next_stage, record, context)
        except Exception as exc:  # the record fails; SQS redelivers it, and past maxReceiveCount moves it to the DLQ
            if not isinstance(exc, Poison):
                log(
                    "warning",
                    "demo_record_failed",
                    message_id=record["messageId"],
                    error=f"{type(exc).__name__}: {exc}",
                )
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        delivery = Delivery(
            job_id=job["id"],
            message_id=record["messageId"],
            receipt_handle=record["receiptHandle"],
            receive_count=int(record["attributes"].get("ApproximateReceiveCount", 0)),
            started=started,
            ended=time.time(),
        )
        with _lock:
            processed[job["id"]] += 1
            deliveries.append(delivery)
    return {"batchItemFailures": failures}


def list_groups(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Stage 1: a job's groups from the vendor; a message a group to stage 2."""
    return _post_each(event, context, VENDOR_PATHS["sandbox.demo.handlers.list_groups"], "items")


def list_items(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Stage 2: a group's items from the vendor; a message an item to stage 3."""
    return _post_each(event, context, VENDOR_PATHS["sandbox.demo.handlers.list_items"], "fetch")


def fetch_item(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Stage 3: an item's data from the vendor."""
    return _post_each(event, context, VENDOR_PATHS["sandbox.demo.handlers.fetch_item"])


VENDOR_PATHS = {
    "sandbox.demo.handlers.list_groups": "/groups",
    "sandbox.demo.handlers.list_items": "/items",
    "sandbox.demo.handlers.fetch_item": "/fetch",
}
"""The vendor API path each demo handler calls (the report's max_rate_5s per queue reads it)."""
