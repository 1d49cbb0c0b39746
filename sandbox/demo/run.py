"""`sqs-loops demo`: the whole system on the sandbox, with a burst of messages, a live view, a report
and a chart (docs/operations.md)."""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import boto3

from poller.lease.tokens import TokenStore, bind_token_table
from poller.logs import LOGGER
from poller.sqs.queue_ref import QueueRef
from sandbox.demo import handlers
from sandbox.demo.chart import write_chart
from sandbox.demo.deployed_run import deployment_report, processed_counts
from sandbox.demo.invariants import BatchSeen, count_causes, double_owned, duplicate_causes, time_to_converge_s
from sandbox.demo.trace import LogTrace, logs_to
from sandbox.demo.vendor_api import VendorApi
from sandbox.demo.view import DemoView
from sandbox.environment import Sandbox, Timings
from sandbox.faults import FaultPlan
from scaler.wanted import wanted_loops

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = Path(__file__).with_name("queues.yml")
SAMPLE_S = 0.5


@dataclass
class DemoOptions:
    messages: int = 2000
    report: Path = Path("demo-out/report.json")
    chart: Path = Path("demo-out/queue-depth.png")
    seed: int = 0
    config: Path = DEMO_CONFIG
    feed_s: float = 25.0  # the burst is fed over this long: moto slows down with deep queues
    poison_every: int = 250  # one message in this many always fails (it must end in the DLQ)
    kill_at_s: float = 12.0  # a loop is crashed then, to show its revival
    max_duration_s: float = 100.0  # with set-up and tear-down, the demo stays under two minutes
    timings: Timings = field(default_factory=Timings)
    # kind -> probability (sandbox/faults.py); the faults stop when the feed ends
    faults: dict[str, float] = field(default_factory=dict)
    out: TextIO = sys.stdout
    live: bool | None = None  # None: a live table on a terminal, a line a second otherwise
    deployed: bool = False  # `serverless deploy` into the sandbox; the functions run from the package


class Demo:
    def __init__(self, options: DemoOptions):
        self.o = options
        self.samples: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.revived = 0
        self.view: DemoView | None = None
        self.sent_ids: set[str] = set()
        self.poison_ids: set[str] = set()
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self.trace = LogTrace()
        self.faults_stopped_s: float | None = None

    def t(self) -> float:
        return round(time.monotonic() - self.started, 2)

    # -- what the functions did ------------------------------------------------------------------

    def observe(self, function: str, payload: Any, result: Any) -> None:
        if function.endswith("-restart") and isinstance(result, dict):
            for key, changes in result.items():
                if isinstance(changes, dict) and key in self.sandbox.config.queues:
                    if changes.get("revived"):
                        with self._lock:
                            self.revived += len(changes["revived"])
                            self.events.append(
                                {"t": self.t(), "queue": key, "direction": "revived", "tokens": changes["revived"]}
                            )
                    self._scale_event(key, "restart", changes)
        elif isinstance(result, list):
            for change in result:
                if isinstance(change, dict) and change.get("action") == "scaled":
                    self._scale_event(change["queue"], "up" if function.endswith("scaleUp") else "down", change)

    def _scale_event(self, queue: str, direction: str, changes: dict[str, Any]) -> None:
        if changes.get("started") or changes.get("retired") or changes.get("unretired"):
            if direction == "restart":
                direction = "up" if changes.get("started") else "down"
            with self._lock:
                self.events.append(
                    {
                        "t": self.t(),
                        "queue": queue,
                        "direction": direction,
                        "wanted": changes.get("wanted"),
                        "started": changes.get("started", []),
                        "retired": changes.get("retired", []),
                    }
                )

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.o.report.parent.mkdir(parents=True, exist_ok=True)
        log_path = self.o.report.with_name("sandbox.log")
        with logs_to(log_path):
            report = self._run()
        print(f"logs: {log_path}", file=self.o.out)
        return report

    def _run(self) -> dict[str, Any]:
        handlers.reset()
        vendor = VendorApi()
        os.environ[handlers.VENDOR_ENV] = vendor.start()
        self.plan = FaultPlan(self.o.faults, seed=self.o.seed)
        self.sandbox = Sandbox(
            self.o.config, timings=self.o.timings, faults=self.plan, root=ROOT, deployed=self.o.deployed
        )
        # A slow batch outlives the longest visibility timeout of the config by a second.
        slow_s = max(q.visibility_timeout_s for q in self.sandbox.config.queues.values()) + 1.0
        handlers.configure(self.plan, slow_s=slow_s)
        LOGGER.addHandler(self.trace)
        try:
            with self.sandbox:
                self.sandbox.runtime.observers.append(self.observe)
                self.sqs = boto3.client("sqs", region_name=self.sandbox.region)
                self.tokens = TokenStore(bind_token_table(f"{self.sandbox.prefix}-tokens", region=self.sandbox.region))
                self.started = time.monotonic()
                self.sandbox.run_restart()  # the first scheduled run: every queue to min_loops
                feeder = threading.Thread(target=self.feed, name="demo-feeder", daemon=True)
                feeder.start()
                self.watch(feeder, vendor)
                feeder.join(timeout=self.o.feed_s + 10)
                report = self.report(vendor)
        finally:
            if self.view is not None:
                self.view.close()
            LOGGER.removeHandler(self.trace)
            handlers.configure(None)
            vendor.stop()
        self.o.report.parent.mkdir(parents=True, exist_ok=True)
        self.o.report.write_text(json.dumps(report, indent=2) + "\n")
        write_chart(self.samples, self.events, self.o.chart, list(self.sandbox.config.queues))
        print(f"report: {self.o.report}  chart: {self.o.chart}", file=self.o.out)
        return report

    def feed(self) -> None:
        """Send the burst over ``feed_s`` seconds, in batches of 10, split 60/40 between the queues."""
        keys = list(self.sandbox.config.queues)
        rand = random.Random(self.o.seed)
        weights = [0.6, 0.4] if len(keys) == 2 else [1 / len(keys)] * len(keys)
        plan = [rand.choices(keys, weights)[0] for _ in range(self.o.messages)]
        batches = [plan[i : i + 10] for i in range(0, len(plan), 10)]
        pause = self.o.feed_s / max(1, len(batches))
        number = 0
        for batch in batches:
            by_queue: dict[str, list[dict[str, str]]] = {}
            bodies: dict[tuple[str, str], dict[str, Any]] = {}
            for key in batch:
                number += 1
                body: dict[str, Any] = {"id": f"{key}-{number}", "poison": number % self.o.poison_every == 0}
                entry_id = str(len(by_queue.get(key, [])))
                by_queue.setdefault(key, []).append({"Id": entry_id, "MessageBody": json.dumps(body)})
                bodies[(key, entry_id)] = body
            for key, entries in by_queue.items():
                try:
                    result = self.sqs.send_message_batch(QueueUrl=self.sandbox.queue_url(key), Entries=entries)
                except Exception as exc:  # the feeder's own failure: those messages were never sent
                    print(f"demo: could not send {len(entries)} messages to {key}: {exc}", file=self.o.out)
                    continue
                with self._lock:  # only what SQS accepted counts as sent
                    for ok in result.get("Successful", []):
                        body = bodies[(key, ok["Id"])]
                        self.sent_ids.add(body["id"])
                        self.poison_ids.update([body["id"]] if body["poison"] else [])
            time.sleep(pause)

    def watch(self, feeder: threading.Thread, vendor: VendorApi) -> None:
        killed = False
        live = self.o.out.isatty() if self.o.live is None else self.o.live
        last_print = 0.0
        calm = 0  # consecutive samples that found the system settled
        while self.t() < self.o.max_duration_s:
            sample = self.sample(vendor)
            self.samples.append(sample)
            if not killed and sample["t"] >= self.o.kill_at_s:
                killed = self.kill_one()
            if self.faults_stopped_s is None and not feeder.is_alive():
                self.plan.stop()  # faults end with the feed, so that the run shows the system converging
                self.faults_stopped_s = self.t()
            if sample["t"] - last_print >= 1.0:
                last_print = sample["t"]
                self.show(sample, live)
            calm = (
                calm + 1 if self.faults_stopped_s is not None and self.settled(sample) and self.converged(sample) else 0
            )
            # Twice in a row: moto moves a message to its DLQ in two steps (out of the queue, into the DLQ),
            # and one sample can fall between them and see it in neither.
            if calm == 2:
                self.show(sample, live)
                return
            time.sleep(SAMPLE_S)
        print(f"demo: not settled after {self.o.max_duration_s:.0f} s; reporting what happened", file=self.o.out)

    def kill_one(self) -> bool:
        key = next(iter(self.sandbox.config.queues))
        for row in self.tokens.tokens_of(self.sandbox.queue_url(key)):
            if not row.retiring and self.sandbox.runtime.crash(row.queue_url, row.token):
                print(
                    f"demo: t={self.t():.0f}s crashed the loop on {key}/{row.token}; restart should revive it",
                    file=self.o.out,
                )
                return True
        return False

    def sample(self, vendor: VendorApi) -> dict[str, Any]:
        queues = {}
        for key, queue in self.sandbox.config.queues.items():
            attrs = self.sqs.get_queue_attributes(
                QueueUrl=self.sandbox.queue_url(key),
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            dlq_url = self.sandbox.dlq_url(key)
            dlq = self.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])[
                "Attributes"
            ]
            url = self.sandbox.queue_url(key)
            rows = list(self.tokens.tokens_of(url))
            running = {(token, loop_id) for u, token, loop_id in self.sandbox.runtime.running_loops() if u == url}
            states = {
                n: self.sandbox.evaluator.states.get(f"{self.sandbox.prefix}-{key}-depth-{n}", "?")
                for n in range(1, len(queue.scale_steps) + 1)
            }
            queues[key] = {
                "visible": int(attrs["ApproximateNumberOfMessages"]),
                "in_flight": int(attrs["ApproximateNumberOfMessagesNotVisible"]),
                "dlq": int(dlq["ApproximateNumberOfMessages"]),
                "loops": sum(1 for r in rows if not r.retiring),
                "retiring": sum(1 for r in rows if r.retiring),
                "alarms": list(states.values()),
                "wanted": wanted_loops(queue, states),
                # working: a loop that should run (a row, not retiring) with a step of its loop running now
                "working": sum(1 for r in rows if not r.retiring and (r.token, r.loop_id) in running),
                # live: a token with a row, or with a loop step running (see docs/reliability.md)
                "live": len({r.token for r in rows} | {token for token, _ in running}),
            }
        processed = len(processed_counts(self.o.deployed, vendor))
        return {"t": self.t(), "queues": queues, "processed": processed, "vendor_calls": vendor.count()}

    def converged(self, sample: dict[str, Any]) -> bool:
        return all(q["working"] == q["wanted"] for q in sample["queues"].values())

    def settled(self, sample: dict[str, Any]) -> bool:
        for key, queue in self.sandbox.config.queues.items():
            q = sample["queues"][key]
            if q["visible"] or q["in_flight"] or q["retiring"] or q["loops"] != queue.min_loops:
                return False
        return True

    def show(self, sample: dict[str, Any], live: bool) -> None:
        self.view = self.view or DemoView(self.o.out, live=live)
        self.view.show(sample, sent=len(self.sent_ids), messages=self.o.messages, revived=self.revived)

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
        unaccounted = self.sent_ids - processed.keys() - dlq
        lost = max(0, len(unaccounted) - in_queue)
        return {
            "sent": len(self.sent_ids),
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
            "invariants": invariants,
            "ok": all(invariants.values()),
        }


def run_demo(options: DemoOptions) -> dict[str, Any]:
    return Demo(options).run()
