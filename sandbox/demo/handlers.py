"""The demo queues' handlers: ordinary SQS-trigger handlers that POST each record to the vendor API with
requests. A body with ``"poison": true`` always fails, so it ends in the dead-letter queue.

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

from sandbox.faults import FaultPlan

VENDOR_ENV = "SQS_LOOPS_DEMO_VENDOR"
TIMEOUT_S = (2, 5)  # connect, read: a handler never waits on the vendor without bound

_local = threading.local()
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


def _post_each(event: dict[str, Any], path: str) -> dict[str, Any]:
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
                raise ValueError(f"job {job.get('id')} is poison")
            response = _session().post(os.environ[VENDOR_ENV] + path, json=job, timeout=TIMEOUT_S)
            response.raise_for_status()
        except Exception:  # the record fails; SQS redelivers it, and past maxReceiveCount moves it to the DLQ
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


def send_email(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _post_each(event, VENDOR_PATHS["sandbox.demo.handlers.send_email"])


def post_invoice(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _post_each(event, VENDOR_PATHS["sandbox.demo.handlers.post_invoice"])


VENDOR_PATHS = {"sandbox.demo.handlers.send_email": "/emails", "sandbox.demo.handlers.post_invoice": "/invoices"}
"""The vendor API path each demo handler posts to (the report's max_rate_5s per queue reads it)."""
