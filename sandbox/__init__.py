"""The embedded stand-in for AWS: a moto server, a local Lambda runtime, an alarm evaluator and a
scheduler, which run the framework's own code unchanged; the demo; the operator CLI (`sqs-loops`).

The names below are imported on first use: a deployed package that ships a handler from sandbox/ (the
demo's) imports only what that handler needs, not the sandbox's own tools (moto, testing/)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.environment import Sandbox, Timings

__all__ = ["Sandbox", "Timings"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from sandbox import environment

        return getattr(environment, name)
    raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
