"""Starting a loop step: an asynchronous Lambda invoke (at-least-once; the claim fences duplicates)."""

from __future__ import annotations

import json
from typing import Any, Protocol


class Invoker(Protocol):
    def invoke_async(self, function: str, payload: dict[str, Any]) -> None:
        """Queue one invocation of ``function`` (a name or ARN, qualifier included) with ``payload``."""


class LambdaInvoker:
    """The real one, on a boto3 Lambda client."""

    def __init__(self, client: Any):
        self.client = client

    def invoke_async(self, function: str, payload: dict[str, Any]) -> None:
        self.client.invoke(FunctionName=function, InvocationType="Event", Payload=json.dumps(payload).encode())
