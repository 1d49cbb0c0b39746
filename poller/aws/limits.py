"""Limits that come from AWS, named once with the reason. Values in seconds unless the name says otherwise."""

from __future__ import annotations

SQS_MAX_BATCH = 10
"""ReceiveMessage, DeleteMessageBatch and ChangeMessageVisibilityBatch take at most 10 messages/entries."""

SQS_MAX_WAIT_S = 20
"""The longest long poll SQS allows (WaitTimeSeconds 0-20)."""

SQS_MAX_VISIBILITY_S = 12 * 60 * 60
"""A message's visibility timeout can be at most 12 hours."""

LAMBDA_MAX_TIMEOUT_S = 900
"""A Lambda invocation runs at most 15 minutes."""

SQS_MAX_RETENTION_S = 14 * 24 * 60 * 60
"""SQS keeps a message at most 14 days (MessageRetentionPeriod)."""

LAMBDA_MIN_EVENT_AGE_S = 60
LAMBDA_MAX_EVENT_AGE_S = 6 * 60 * 60
"""MaximumEventAgeInSeconds of an async invoke config: 60 to 21600 (the default, 6 hours)."""

LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
"""A synchronous (RequestResponse) Invoke's request payload is at most 6 MB."""
