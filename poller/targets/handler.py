"""Import a queue's handler from its dotted path, once per container."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from poller.exceptions import HandlerImportError

Handler = Callable[[dict[str, Any], Any], Any]
_resolved: dict[str, Handler] = {}


def resolve_handler(path: str) -> Handler:
    """``package.module.function`` -> the function. Raises :class:`HandlerImportError` naming the path and
    the cause (module not found, syntax error, missing attribute, not callable). Failures are not cached:
    a later invocation tries again."""
    if path in _resolved:
        return _resolved[path]
    module_name, _, attribute = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        target = getattr(module, attribute)
    except Exception as exc:  # any import-time failure of user code is the same problem for the loop
        raise HandlerImportError(path, exc) from exc
    if not callable(target):
        raise HandlerImportError(path, TypeError(f"{type(target).__name__} is not callable"))
    _resolved[path] = target
    return target  # type: ignore[no-any-return]  # checked callable above
