"""The demo queues' handlers: ordinary SQS-trigger handlers that POST each record to the vendor API with
requests. A body with ``"poison": true`` always fails, so it ends in the dead-letter queue."""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from typing import Any

import requests

VENDOR_ENV = "SQS_LOOPS_DEMO_VENDOR"
TIMEOUT_S = (2, 5)  # connect, read: a handler never waits on the vendor without bound

_local = threading.local()
_lock = threading.Lock()
processed: Counter[str] = Counter()  # message id (from the body) -> times handled successfully


def reset() -> None:
    with _lock:
        processed.clear()


def _session() -> requests.Session:
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    session: requests.Session = _local.session
    return session


def _post_each(event: dict[str, Any], path: str) -> dict[str, Any]:
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
        with _lock:
            processed[job["id"]] += 1
    return {"batchItemFailures": failures}


def send_email(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _post_each(event, VENDOR_PATHS["sandbox.demo.handlers.send_email"])


def post_invoice(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _post_each(event, VENDOR_PATHS["sandbox.demo.handlers.post_invoice"])


VENDOR_PATHS = {"sandbox.demo.handlers.send_email": "/emails", "sandbox.demo.handlers.post_invoice": "/invoices"}
"""The vendor API path each demo handler posts to (the report's max_rate_5s per queue reads it)."""
