"""The demo's report: every message accounted for by id, the invariants of docs/reliability.md from the
run's trace, and what the vendor saw: per queue and for the shared downstream (its busiest 5 s, how much of
its limit was used, each queue's share)."""

from __future__ import annotations

import itertools
import json
import time
from functools import partial
from typing import Any

from poller.config import Config
from poller.downstream.shares import max_window
from poller.sqs.queue_ref import QueueRef
from sandbox.demo import handlers
from sandbox.demo.backlog import ALONE_KEYS, backlog_figures
from sandbox.demo.deployed_run import deployment_report, processed_counts
from sandbox.demo.invariants import BatchSeen, count_causes, double_owned, duplicate_causes, time_to_converge_s
from sandbox.demo.job_run import DemoRun
from sandbox.demo.options import DemoOptions
from sandbox.demo.pipeline import PipelinePlan
from sandbox.demo.trace import LogTrace
from sandbox.demo.vendor_api import VendorApi
from sandbox.environment import Sandbox
from sandbox.faults import FaultPlan
from scaler.limit_cap import limit_of

BACKLOG = 20
"""A sample with at least this many visible messages in all can feed the vendor at its limit."""


class DemoReport:
    """The report half of :class:`sandbox.demo.run.Demo` (what the run part fills in is declared here)."""

    o: DemoOptions
    sandbox: Sandbox
    sqs: Any
    samples: list[dict[str, Any]]
    events: list[dict[str, Any]]
    revived: int
    trace: LogTrace
    plan: FaultPlan
    pipeline: PipelinePlan
    fed_ids: set[str]
    faults_stopped_s: float | None
    started: float
    poison_ids: set[str]
    job_run: DemoRun | None

    def t(self) -> float:
        raise NotImplementedError

    def settled(self, sample: dict[str, Any]) -> bool:
        raise NotImplementedError

    def dead_letters(self) -> set[str]:
        """The ids of the messages in the queues' DLQs (read, and kept invisible: the run is over)."""
        ids: set[str] = set()
        for key in self.sandbox.config.queues:
            url = self.sandbox.dlq_url(key)
            while True:
                got = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600)
                if not got.get("Messages"):
                    break
                ids.update(json.loads(m["Body"])["id"] for m in got["Messages"])
        return ids

    def report(self, vendor: VendorApi) -> dict[str, Any]:
        """Accounted by message id: every message sent is processed, in a DLQ, or still queued; anything
        else is lost."""
        final = self.samples[-1] if self.samples else None
        processed = processed_counts(self.o.deployed, vendor)
        dlq = self.dead_letters()
        in_queue = sum(q["visible"] + q["in_flight"] for q in final["queues"].values()) if final else 0
        expected = self.pipeline.expected(self.fed_ids, set(processed))
        self.poison_ids = self.pipeline.poison & expected
        unaccounted = expected - processed.keys() - dlq
        lost = max(0, len(unaccounted) - in_queue)
        return {
            "sent": len(expected),  # the jobs fed, and every message a processed one sent on
            "jobs": len(self.fed_ids),
            "by_stage": {
                k: sum(1 for m in expected if self.pipeline.stage_of[m] == k) for k in self.sandbox.config.queues
            },
            "processed": len(processed),
            "duplicates": sum(n - 1 for n in processed.values() if n > 1),
            "dlq": len(dlq),
            "poison": len(self.poison_ids),
            "processed_and_dlq": len(dlq & processed.keys()),
            "in_queue": in_queue,
            "lost": lost,
            "revived": self.revived,
            "crashed": [f"{QueueRef.of_url(url).name}/{token}" for url, token in self.sandbox.runtime.crashed],
            "scale_events": self.events,
            "alarm_changes": [list(c) for c in self.sandbox.evaluator.changes],
            "duration_s": self.t(),
            "settled": final is not None and self.settled(final),
            "invocations": self.sandbox.runtime.invocations,
            "vendor_calls": vendor.count(),
            "vendor_max_rate_5s": vendor.max_rate(),
            "max_loops": {
                k: max((s["queues"][k]["loops"] for s in self.samples), default=0) for k in self.sandbox.config.queues
            },
            "final_loops": {k: final["queues"][k]["loops"] if final else 0 for k in self.sandbox.config.queues},
            **self.rates(vendor),
            "downstreams": self.downstreams(vendor),
            "limit_cap": self.limit_cap(vendor),
            "runs": self.job_run.report(self.trace) if self.job_run else {},
            "deployed": deployment_report(self.sandbox),
            **self.reliability(processed, dlq, lost),
        }

    def rates(self, vendor: VendorApi) -> dict[str, dict[str, float | None]]:
        """Per queue: its ``rate_limit`` (None: none) and the vendor's busiest 5 s for it (calls a second)."""
        busiest = vendor.max_rate(5.0)
        queues = self.sandbox.config.queues
        return {
            "rate_limit": {k: q.rate_limit for k, q in queues.items()},
            "max_rate_5s": {
                k: busiest.get(handlers.VENDOR_PATHS.get(q.handler or "", ""), 0.0) for k, q in queues.items()
            },
        }

    def downstreams(self, vendor: VendorApi) -> dict[str, dict[str, Any]]:
        """Per shared downstream: its limit, the busiest 5 s of all its queues' calls together, the share of
        the limit used while the queues held a backlog that could feed it, and each queue's part."""
        config: Config = self.sandbox.config
        with vendor._lock:
            calls = {path: list(times) for path, times in vendor.calls.items()}
        busy = [
            (a["t"], b["t"])
            for a, b in itertools.pairwise(self.samples)
            if sum(q["visible"] for q in a["queues"].values()) >= BACKLOG
        ]
        out: dict[str, dict[str, Any]] = {}
        for name, down in config.downstreams.items():
            keys = [k for k, q in config.queues.items() if q.downstream == name]
            times = {
                k: [
                    t - self.started
                    for t in calls.get(handlers.VENDOR_PATHS.get(config.queues[k].handler or "", ""), [])
                ]
                for k in keys
            }
            every = sorted(t for ts in times.values() for t in ts)
            busy_s = sum(b - a for a, b in busy)
            used = sum(1 for t in every for a, b in busy if a <= t < b)
            out[name] = {
                "rate_limit": down.rate_limit,
                "max_rate_5s": round(max_window(every, 5.0) / 5.0, 1),
                "utilization": round(used / (down.rate_limit * busy_s), 3) if busy_s else None,
                "backlog_s": round(busy_s, 1),
                "utilization_30s": windows_used(every, busy, down.rate_limit),
                "share_by_queue": {k: round(len(ts) / max(1, len(every)), 3) for k, ts in times.items()},
            }
        return out

    def limit_cap(self, vendor: VendorApi) -> dict[str, dict[str, Any]]:
        """Per rate-limited queue (its own ``rate_limit`` or a shared downstream), while its backlog lasted
        (from the first sample with a visible message to the last with any): the loop-seconds its steps ran,
        the fewest that keep its limit busy at the pace its loops measured (docs/scaling.md#limit-cap), their
        ratio, and how much of its limit (its share, as the control plane read it) it used."""
        config: Config = self.sandbox.config
        with vendor._lock:
            calls = {path: list(times) for path, times in vendor.calls.items()}
        # The trace's times are epoch seconds, the samples' and the runtime's monotonic.
        to_monotonic = time.monotonic() - time.time()
        decisions = [
            (t + to_monotonic - self.started, line)
            for t, line in sorted(self.trace.lines("reconciled") + self.trace.lines("scaled"), key=lambda x: x[0])
            if isinstance(line.get("limited"), dict)
        ]
        out: dict[str, dict[str, Any]] = {}
        for key, queue in config.queues.items():
            if limit_of(queue) is None:
                continue
            mine = [(t, line) for t, line in decisions if line.get("queue") == key]
            times = [t - self.started for t in calls.get(handlers.VENDOR_PATHS.get(queue.handler or "", ""), [])]
            loop_s = partial(self._loop_s, key)
            out[key] = backlog_figures(self.samples, queue, mine, times, loop_s)
            others = [
                k for k, q in config.queues.items() if k != key and q.downstream and q.downstream == queue.downstream
            ]
            if others:  # and from the other queues' last message on: its share then the whole limit
                busy = [
                    s["t"]
                    for s in self.samples
                    if any(s["queues"][k]["visible"] + s["queues"][k]["in_flight"] for k in others)
                ]
                since = busy[-1] if busy else None
                alone = backlog_figures(self.samples, queue, mine, times, loop_s, since=since)
                out[key]["alone"] = {k: alone.get(k) for k in ALONE_KEYS} | {"since_s": since}
        return out

    def _loop_s(self, key: str, a: float, b: float) -> float:
        """Loop-seconds of ``key`` between ``a`` and ``b`` (seconds since the run began)."""
        return self.sandbox.runtime.loop_seconds(self.sandbox.queue_url(key), self.started + a, self.started + b)

    def reliability(self, processed: dict[str, int], dlq: set[str], lost: int) -> dict[str, Any]:
        """The invariants of docs/reliability.md, from the run's trace."""
        config = self.sandbox.config
        urls = {key: self.sandbox.queue_url(key) for key in config.queues}
        batches = [
            BatchSeen(
                started=t - line["duration_ms"] / 1000,
                queue_url=urls[line["queue"]],
                token=line["token"],
                loop_id=line["loop_id"],
                generation=int(line["generation"]),
            )
            for t, line in self.trace.lines("batch")
            if line.get("queue") in urls
        ]
        violations = double_owned(batches, self.sandbox.token_trace.snapshot())
        undeleted = {
            message_id
            for event in ("delete_failed", "processed_not_deleted")
            for _, line in self.trace.lines(event)
            for message_id in line.get("message_ids", [])
        } | {line["message_id"] for _, line in self.trace.lines("batch_entry_failed") if line.get("message_id")}
        with handlers._lock:
            deliveries = list(handlers.deliveries)
        repeats = duplicate_causes(deliveries, self.plan.crashed_receipts, undeleted)
        since = self.faults_stopped_s if self.faults_stopped_s is not None else self.t()
        converge_s = time_to_converge_s(self.samples, since)
        bound_s = config.stale_after_s + 2 * self.o.timings.restart_period_s
        max_live = {
            key: max(
                max((s["queues"][key]["live"] for s in self.samples), default=0),
                self.sandbox.runtime.max_running.get(urls[key], 0),
            )
            for key in config.queues
        }
        within_limits = all(max_live[key] <= queue.max_loops for key, queue in config.queues.items())
        runtime = self.sandbox.runtime
        overlaps = {key: runtime.overlap_s(urls[key]) for key in config.queues}
        poison_elsewhere = len(self.poison_ids - dlq) + len(self.poison_ids & processed.keys())
        retries: dict[str, int] = {}
        for _, line in self.trace.lines("transient_error"):
            retries[line["what"]] = retries.get(line["what"], 0) + 1
        invariants = {
            "lost_is_zero": lost == 0,
            "poison_only_in_dlq": poison_elsewhere == 0,
            **({} if self.o.deployed else {"double_owned_is_zero": not violations}),  # deployed: untraced
            "converged": converge_s is not None and converge_s <= bound_s,
            "never_above_max_loops": within_limits,
        }
        return {
            "faults": dict(self.o.faults),
            "faults_injected": self.plan.counts(),
            "faults_stopped_s": self.faults_stopped_s,
            "loop_retries": dict(sorted(retries.items())),
            "handovers": len(self.trace.lines("handing_over")),
            "double_owned": len(violations),
            "double_owned_batches": violations[:20],
            "duplicate_causes": count_causes(repeats),
            "duplicate_examples": [r for r in repeats if r["cause"] != "crash"][:10],
            "dlq_not_poison": len(dlq - self.poison_ids),
            "poison_elsewhere": poison_elsewhere,
            "time_to_converge_s": converge_s,
            "converge_bound_s": bound_s,
            "converged": invariants["converged"],
            "max_live": max_live,
            # Loops with a step running at once: at most one loop per token owns its lease, and a loop whose row
            # was taken over or deleted may still be finishing the batch in hand (double_owned checks that it
            # starts no other one): max_live plus the overlaps going on at that moment.
            "max_loops_running": {key: runtime.max_loops_running.get(urls[key], 0) for key in config.queues},
            "overlap": {
                key: {"count": len(spans), "longest_s": round(max(spans, default=0.0), 2)}
                for key, spans in overlaps.items()
            },
            "overlap_bound_s": config.poller.timeout_s,
            "invariants": invariants,
            "ok": all(invariants.values()),
        }


def windows_used(times: list[float], busy: list[tuple[float, float]], rate: float, span_s: float = 30.0) -> Any:
    """The share of the limit used in each ``span_s`` window (a second apart) that lies wholly inside a stretch
    of backlog (what the issue's ">= 95 % over 30 s" is about): the least and the most, and how many."""
    stretches: list[list[float]] = []
    for a, b in busy:  # join the samples' intervals into continuous stretches
        if stretches and abs(stretches[-1][1] - a) < 1e-9:
            stretches[-1][1] = b
        else:
            stretches.append([a, b])
    shares = [
        sum(1 for t in times if start <= t < start + span_s) / (rate * span_s)
        for a, b in stretches
        for start in (a + n for n in range(int(b - a - span_s) + 1))
    ]
    if not shares:
        return None
    return {"least": round(min(shares), 3), "most": round(max(shares), 3), "windows": len(shares)}
