"""The config file (``queues.yml``), parsed once into frozen, validated objects: :func:`load_config`."""

from __future__ import annotations

from poller.config.model import TARGET_FIELDS, Config, HttpTarget, PollerSettings, QueueConfig, RetryBackoff, ScaleStep
from poller.config.parse import CONFIG_ENV, DEFAULT_CONFIG_FILE, config_path, load_config, parse_config

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_FILE",
    "TARGET_FIELDS",
    "Config",
    "HttpTarget",
    "PollerSettings",
    "QueueConfig",
    "RetryBackoff",
    "ScaleStep",
    "config_path",
    "load_config",
    "parse_config",
]
