"""One invocation of the loop function in a fresh interpreter, for its peak memory: ``python -m
bench.invocation EVENT_JSON MESSAGES``. Runs ``poller.handler.handler`` as Lambda would (the environment
names the table, the config and the endpoints), stops the step once MESSAGES were handled, and prints
``{"outcome", "ru_maxrss_kb", "seconds"}``. Imports nothing beyond what the entry point imports, so the peak
is the loop's."""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any


class _Context:
    """A Lambda context that ends the step once ``target`` messages were handled (bench.handlers.noop
    reports each batch)."""

    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:sqs-loops-bench-poller"
    function_name = "sqs-loops-bench-poller"
    aws_request_id = "bench-rss"
    memory_limit_in_mb = 256

    def __init__(self, target: int, budget_s: float = 900.0):
        self.target, self.handled = target, 0
        self.end = time.monotonic() + budget_s

    def on_batch(self, records: list[Any]) -> None:
        self.handled += len(records)
        if self.handled >= self.target:
            self.end = time.monotonic()

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.end - time.monotonic()) * 1000))


def main() -> None:
    event, target = json.loads(sys.argv[1]), int(sys.argv[2])
    started = time.perf_counter()
    import poller.handler

    outcome = poller.handler.handler(event, _Context(target))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    print(json.dumps({"outcome": outcome, "ru_maxrss_kb": peak_kb, "seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main()
