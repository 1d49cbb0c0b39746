"""Sorting AWS failures by what the loop should do about them, on the error code, never the message."""

from __future__ import annotations

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from pynamodb.exceptions import PynamoDBException

# Codes that mean "try again later": throttling and server-side faults of SQS, DynamoDB and Lambda.
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "TransactionInProgressException",
        "EC2ThrottledException",
        "KMSThrottlingException",
        "KmsThrottled",  # SQS's code when KMS throttles a queue's encryption key
        "OverLimit",  # SQS: too many messages in flight; they return as handlers finish
    }
)

# SQS answers a deleted queue with either code, depending on protocol (JSON vs query).
QUEUE_MISSING_CODES = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
# Access denied; and an encrypted queue whose KMS key is disabled, gone or unusable is as unusable as a
# deleted queue until someone fixes the key.
ACCESS_DENIED_CODES = frozenset(
    {
        "KmsDisabled",
        "KmsNotFound",
        "KmsInvalidState",
        "KmsInvalidKeyUsage",
        "KmsOptInRequired",
        "AccessDenied",
        "AccessDeniedException",
        "KMS.AccessDeniedException",
        "KmsAccessDenied",
        "UnrecognizedClientException",
    }
)

_NETWORK_ERRORS = (ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError)


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore or PynamoDB error, else None."""
    if isinstance(exc, PynamoDBException):
        # Not exc.cause_response_code: it raises when the cause is a botocore network error (a read timeout
        # carries response=None), which made a timed-out claim end its loop as an unexpected error.
        return error_code(exc.cause) if isinstance(exc.cause, BaseException) else None
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def _status(exc: BaseException) -> int:
    if isinstance(exc, PynamoDBException) and isinstance(exc.cause, BaseException):
        return _status(exc.cause)
    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 0


def is_transient(exc: BaseException) -> bool:
    """Throttling, 5xx and network failures: worth retrying with backoff."""
    if isinstance(exc, _NETWORK_ERRORS):
        return True
    if isinstance(exc, PynamoDBException) and isinstance(exc.cause, _NETWORK_ERRORS):
        return True
    code = error_code(exc)
    return code in TRANSIENT_CODES or _status(exc) >= 500


def is_queue_unavailable(exc: BaseException) -> bool:
    """The queue is gone or we may not use it: retrying cannot help."""
    code = error_code(exc)
    return code in QUEUE_MISSING_CODES or code in ACCESS_DENIED_CODES


def is_condition_failure(exc: BaseException) -> bool:
    return error_code(exc) == "ConditionalCheckFailedException"
