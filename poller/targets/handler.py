"""The in-process target: a queue's ``handler``, imported from its dotted path once per container and called
as the SQS trigger calls it."""

from __future__ import annotations

import importlib
import traceback
from collections.abc import Callable
from typing import Any

from poller.exceptions import HandlerImportError
from poller.logs import log
from poller.sqs.records import failed_ids
from poller.targets.base import RETRY, Failures, all_failed, record_ids

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


class HandlerTarget:
    """``handler(event, context)``, read as the SQS trigger reads it: raising fails every record."""

    def __init__(self, handler: Handler):
        self.handler = handler

    def send(self, event: dict[str, Any], context: Any, log_fields: dict[str, object]) -> Failures:
        ids = record_ids(event)
        try:
            answer = self.handler(event, context)
        except Exception as exc:  # the trigger's rule: an exception fails the whole batch
            log(
                "error",
                "handler_error",
                error=f"{type(exc).__name__}: {exc}",
                traceback="".join(traceback.format_exception(exc))[-4000:],
                message_ids=ids,
                **log_fields,
            )
            return all_failed(event)
        return dict.fromkeys(failed_ids(answer, ids, log_fields=log_fields), RETRY)
