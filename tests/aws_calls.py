"""Every AWS operation our code makes, recorded through botocore's own event hooks, by the function whose
entry point was running: what tests/test_least_privilege.py checks against each function's rendered policy.

Each client botocore makes while :func:`recording` is active (boto3's and PynamoDB's alike) gets a
``before-parameter-build`` hook (it sees the call's own parameters); the function in charge is the entry point :meth:`Recorder.as_function` runs (a global,
not a context variable, so that the keeper's and the background delete's threads count for it too)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import botocore.session
import pytest

from poller.lease.tokens import bind_token_table
from scaler.overrides import bind_override_table

# An operation whose IAM action has another name than the operation (the Service Authorization Reference):
# batch calls are authorised by their single action, and Lambda's Invoke is lambda:InvokeFunction.
ACTION_OF = {
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "lambda:Invoke": "lambda:InvokeFunction",
}
# The IAM prefix where it differs from the signing name.
PREFIX_OF = {"monitoring": "cloudwatch"}
# What names the resource of a call, by parameter.
RESOURCE_PARAMS = ("QueueUrl", "TableName", "FunctionName", "TopicArn", "AlarmNames", "AlarmNamePrefix")


@dataclass(frozen=True)
class Call:
    action: str  # the IAM action, e.g. sqs:ReceiveMessage
    resource: str  # what the call named: a queue URL, a table, a function, a topic ARN, alarm names


@dataclass
class Recorder:
    calls: dict[str, list[Call]] = field(default_factory=dict)  # function key -> calls
    current: str | None = None
    before: list[Callable[[str, dict[str, Any]], bool]] = field(default_factory=list)
    """Run before each recorded call with (action, parameters): how a test makes a race happen at the
    moment it can (another writer's heartbeat just before a takeover). One that returns True is done."""

    @contextmanager
    def as_function(self, function: str) -> Iterator[None]:
        self.current = function
        try:
            yield
        finally:
            self.current = None

    def hook(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if self.current is None:  # the test's own set-up and checks
            return
        service = model.service_model.signing_name
        action = f"{PREFIX_OF.get(service, service)}:{model.name}"
        self.before[:] = [hook for hook in self.before if not hook(ACTION_OF.get(action, action), params)]
        named = next((params[p] for p in RESOURCE_PARAMS if p in params), "")
        self.calls.setdefault(self.current, []).append(Call(ACTION_OF.get(action, action), str(named)))


@contextmanager
def recording(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    recorder = Recorder()
    make = botocore.session.Session.create_client

    def create_client(self: botocore.session.Session, *args: Any, **kwargs: Any) -> Any:
        client = make(self, *args, **kwargs)
        client.meta.events.register("before-parameter-build", recorder.hook)
        return client

    monkeypatch.setattr(botocore.session.Session, "create_client", create_client)
    # The table models are cached per table, each with the client it made first: bind them afresh, so that
    # the entry points' models make (hooked) clients of their own.
    bind_token_table.cache_clear()
    bind_override_table.cache_clear()
    yield recorder
