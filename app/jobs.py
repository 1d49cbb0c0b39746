"""An example handler for the deployment test fixture: accepts every message."""

from __future__ import annotations

from typing import Any


def handle(event: dict[str, Any], context: Any) -> None:
    return None
