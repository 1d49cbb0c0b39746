"""The demo's pipeline as one run (docs/runs.md): the feeder starts it and sends the jobs into it, each
stage's handler sends its children into the run of the record it handles, the loops count what is done
and failed, and one notice goes out when the last message is. The report shows the run's counts and the
notices its log lines announced; the live view shows its progress."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from poller.runs import RunBook
from producer import Run, run_status, start_run
from sandbox.demo.trace import LogTrace


@dataclass(frozen=True)
class DemoRun:
    """The run of one demo, on the sandbox's token table and runs topic."""

    run: Run
    book: RunBook

    @classmethod
    def start(cls, region: str, *, seed: int) -> DemoRun | None:
        """None when the deployment has no runs (no token table in this environment)."""
        book = RunBook.from_environment(region)
        if book is None:
            return None
        return cls(start_run(f"demo-{seed}-{int(time.time())}", book=book), book)

    def progress(self) -> dict[str, Any] | None:
        status = run_status(self.run, book=self.book)
        return None if status is None else status.as_dict()

    def report(self, trace: LogTrace) -> dict[str, dict[str, Any]]:
        """``{name: {total, done, failed, finished_at, notices}}``; ``notices``: the notices published for
        it, as their log lines say (exactly one once it is finished)."""
        status = self.progress() or {}
        name = str(self.run)
        notices = sum(1 for _, line in trace.lines("run_notice_published") if line.get("run") == name)
        keys = ("total", "done", "failed", "finished_at")
        return {name: {**{k: status.get(k) for k in keys}, "notices": notices}}
