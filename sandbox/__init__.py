"""The embedded stand-in for AWS: a moto server, a local Lambda runtime, an alarm evaluator and a
scheduler, which run the framework's own code unchanged; the demo; the operator CLI (`sqs-loops`)."""

from __future__ import annotations

from sandbox.environment import Sandbox, Timings

__all__ = ["Sandbox", "Timings"]
