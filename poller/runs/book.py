"""A run book: the run table and the notifier of one deployment, with clients made on first use (a loop
that never sees a run message makes neither a DynamoDB nor an SNS client)."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cached_property
from typing import Any

from poller.aws.environment import LOOPS_TABLE
from poller.clock import SYSTEM_CLOCK, Clock
from poller.runs.notice import RUNS_TOPIC_ARN, Notifier, Publish, sns_publisher
from poller.runs.table import RunTable


class RunBook:
    """``dynamodb``: makes the low-level DynamoDB client; ``publish``: makes the notice's publisher (None:
    no topic configured, notices are logged as failed and left to restart)."""

    def __init__(
        self,
        table_name: str,
        *,
        dynamodb: Callable[[], Any],
        publish: Callable[[], Publish | None],
        clock: Clock = SYSTEM_CLOCK,
    ):
        self.table_name = table_name
        self._dynamodb = dynamodb
        self._publish = publish
        self.clock = clock

    @classmethod
    def of(
        cls, dynamodb: Any, table_name: str, *, publish: Publish | None = None, clock: Clock = SYSTEM_CLOCK
    ) -> RunBook:
        """From a client already made (tests, scripts)."""
        return cls(table_name, dynamodb=lambda: dynamodb, publish=lambda: publish, clock=clock)

    @classmethod
    def from_environment(cls, region: str, *, clock: Clock = SYSTEM_CLOCK) -> RunBook | None:
        """The deployment's run book (``LOOPS_TABLE``, ``LOOPS_RUNS_TOPIC``), or None without a table."""
        from poller.aws.clients import dynamodb_client, sns_client

        table = os.environ.get(LOOPS_TABLE)
        if not table:
            return None
        topic = os.environ.get(RUNS_TOPIC_ARN)
        return cls(
            table,
            dynamodb=lambda: dynamodb_client(region),
            publish=lambda: sns_publisher(sns_client(region), topic) if topic else None,
            clock=clock,
        )

    @cached_property
    def table(self) -> RunTable:
        return RunTable(self._dynamodb(), self.table_name)

    @cached_property
    def notifier(self) -> Notifier:
        return Notifier(self.table, self._publish(), self.clock)
