"""One invocation of the loop function in a fresh interpreter, for its peak memory: ``python -m
bench.invocation EVENT_JSON MESSAGES``. Runs ``poller.handler.handler`` as Lambda would (the environment
names the table, the config and the endpoints), stops the step once MESSAGES were handled, and prints
``{"outcome", "ru_maxrss_kb", "seconds"}``. Imports nothing beyond what the entry point imports, so the peak
is the loop's."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import tracemalloc
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
            # No room for another batch, room for the last delete and the recursion (the 3-s reserve and
            # 1 s): with none, the last delete was abandoned and the count missed its batch.
            self.end = min(self.end, time.monotonic() + 4.0)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.end - time.monotonic()) * 1000))


def main() -> None:
    event, target = json.loads(sys.argv[1]), int(sys.argv[2])
    started = time.perf_counter()
    traced = os.environ.get("BENCH_TRACEMALLOC") == "1"  # where the memory goes (slower; not for the peak)
    if traced:
        tracemalloc.start()
    import poller.handler

    outcome = poller.handler.handler(event, _Context(target))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    result = {"outcome": outcome, "ru_maxrss_kb": peak_kb, "seconds": time.perf_counter() - started}
    if traced:
        result["top_allocations"] = _top_packages(tracemalloc.take_snapshot())
    print(json.dumps(result))


def _top_packages(snapshot: tracemalloc.Snapshot, count: int = 12) -> dict[str, float]:
    """Live Python allocations at the end of the step, in MB, by top-level package of the allocating file."""
    sizes: dict[str, int] = {}
    for stat in snapshot.statistics("filename"):
        path = stat.traceback[0].filename
        parts = path.split("site-packages/")[-1].split("/")
        key = parts[0] if "site-packages/" in path else ("<stdlib>" if "/lib/python" in path else path)
        sizes[key] = sizes.get(key, 0) + stat.size
    top = sorted(sizes.items(), key=lambda item: -item[1])[:count]
    return {name: round(size / 2**20, 2) for name, size in top}


if __name__ == "__main__":
    main()
