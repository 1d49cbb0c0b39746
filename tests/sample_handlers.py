"""Handlers that test configs name by dotted path (``sample_handlers.dispatch``). Each test sets the
behaviour it needs with :func:`use`; ``seen`` keeps every record handed to a handler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Behaviour = Callable[[dict[str, Any], Any], Any]

seen: list[dict[str, Any]] = []
_behaviour: Behaviour | None = None


def use(behaviour: Behaviour) -> None:
    global _behaviour
    _behaviour = behaviour


def reset() -> None:
    global _behaviour
    _behaviour = None
    seen.clear()


def dispatch(event: dict[str, Any], context: Any) -> Any:
    seen.extend(event["Records"])
    return _behaviour(event, context) if _behaviour else None


def bodies() -> list[str]:
    return [r["body"] for r in seen]


not_callable = 42
