"""sqs-loops data plane: the loop function and everything one loop needs."""

from __future__ import annotations

from poller.config import (
    Config,
    HttpTarget,
    PollerSettings,
    QueueConfig,
    RetryBackoff,
    ScaleStep,
    config_path,
    load_config,
    parse_config,
)
from poller.exceptions import (
    BadLoopEvent,
    ConfigError,
    HandlerImportError,
    QueueUnavailable,
    RetriesExhausted,
    SqsLoopsError,
    TokenExists,
    TokenLost,
    UnknownQueue,
)
from poller.lease.step import LoopStep
from poller.lease.tokens import TokenState, TokenStore, bind_token_table

__all__ = [
    "BadLoopEvent",
    "Config",
    "ConfigError",
    "HandlerImportError",
    "HttpTarget",
    "LoopStep",
    "PollerSettings",
    "QueueConfig",
    "QueueUnavailable",
    "RetriesExhausted",
    "RetryBackoff",
    "ScaleStep",
    "SqsLoopsError",
    "TokenExists",
    "TokenLost",
    "TokenState",
    "TokenStore",
    "UnknownQueue",
    "bind_token_table",
    "config_path",
    "load_config",
    "parse_config",
]
