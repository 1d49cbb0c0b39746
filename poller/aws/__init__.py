"""What every part takes from AWS: error codes sorted into transient and final, retries with backoff, the
limits AWS sets, ARNs, the Lambda environment and the client settings."""

from __future__ import annotations

from poller.aws.arn import Arn, dns_suffix_of, partition_of
from poller.aws.errors import error_code, is_condition_failure, is_queue_unavailable, is_transient
from poller.aws.retry import Backoff, retry_transient

__all__ = [
    "Arn",
    "Backoff",
    "dns_suffix_of",
    "error_code",
    "is_condition_failure",
    "is_queue_unavailable",
    "is_transient",
    "partition_of",
    "retry_transient",
]
