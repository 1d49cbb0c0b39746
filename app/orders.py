"""An example SQS handler, written exactly as for Lambda's own SQS trigger."""

from __future__ import annotations

import json
import logging
from typing import Any

LOGGER = logging.getLogger(__name__)


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Log each order; report the ones whose body is not JSON as failed, so that only they are retried
    (and, past maxReceiveCount, end in the dead-letter queue)."""
    failures = []
    for record in event["Records"]:
        try:
            order = json.loads(record["body"])
        except json.JSONDecodeError:
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        LOGGER.info("order %s", order)
    return {"batchItemFailures": failures}
