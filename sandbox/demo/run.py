"""`sqs-loops demo`: the whole system on the sandbox, a three-stage pipeline (sandbox/demo/pipeline.py) on
one shared vendor limit, with a live view, a report (sandbox/demo/report.py) and a chart
(docs/operations.md)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import boto3

from poller.lease.tokens import TokenStore, bind_token_table
from poller.logs import LOGGER
from producer import send_messages
from sandbox.demo import handlers
from sandbox.demo.chart import write_chart
from sandbox.demo.deployed_run import processed_counts
from sandbox.demo.job_run import DemoRun
from sandbox.demo.options import DEMO_CONFIG, DemoOptions
from sandbox.demo.pipeline import STAGES, PipelinePlan
from sandbox.demo.report import DemoReport
from sandbox.demo.trace import LogTrace, logs_to
from sandbox.demo.vendor_api import VendorApi
from sandbox.demo.view import DemoView
from sandbox.environment import Sandbox
from sandbox.faults import FaultPlan
from scaler.wanted import wanted_loops

__all__ = ["DEMO_CONFIG", "Demo", "DemoOptions", "run_demo"]

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_S = 0.5


class Demo(DemoReport):
    def __init__(self, options: DemoOptions):
        self.o = options
        self.samples: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.revived = 0
        self.view: DemoView | None = None
        self.fed_ids: set[str] = set()  # the jobs SQS accepted from the feeder (stage 1)
        self.pipeline = PipelinePlan.make(options.messages, poison_every=options.poison_every, seed=options.seed)
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self.trace = LogTrace()
        self.faults_stopped_s: float | None = None
        self.job_run: DemoRun | None = None
        self.decided: dict[str, int] = {}  # queue key -> the wanted count the control plane last moved it to

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
        moved = bool(changes.get("started") or changes.get("retired") or changes.get("unretired"))
        if isinstance(changes.get("wanted"), int) and (direction == "restart" or moved):
            self.decided[queue] = changes["wanted"]  # the control plane's count: alarms, depth and cool-down
        if moved:
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
                # The whole pipeline as one run (docs/runs.md); a deployed stack's loops count their own.
                self.job_run = None if self.o.deployed else DemoRun.start(self.sandbox.region, seed=self.o.seed)
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
        limits = {name: d.rate_limit for name, d in self.sandbox.config.downstreams.items()}
        write_chart(self.samples, self.events, self.o.chart, list(self.sandbox.config.queues), limits)
        print(f"report: {self.o.report}  chart: {self.o.chart}", file=self.o.out)
        return report

    def feed(self) -> None:
        """Send the pipeline's jobs (stage 1) over ``feed_s`` seconds, in batches of up to 10; the stages
        fan them out from there."""
        key = STAGES[0]
        jobs = self.pipeline.jobs
        batches = [jobs[i : i + 10] for i in range(0, len(jobs), 10)]
        pause = self.o.feed_s / max(1, len(batches))
        run = self.job_run.run if self.job_run else None
        for batch in batches:
            try:
                sent = send_messages(self.sqs, self.sandbox.queue_url(key), [json.dumps(j) for j in batch], run=run)
            except Exception as exc:  # the feeder's own failure: those jobs were never sent
                print(f"demo: could not send {len(batch)} jobs to {key}: {exc}", file=self.o.out)
                continue
            refused = {f.index for f in sent.failed}
            with self._lock:  # only what SQS accepted counts as sent
                self.fed_ids.update(job["id"] for n, job in enumerate(batch) if n not in refused)
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
                "wanted": self.decided.get(key, wanted_loops(queue, states)),
                # working: a loop that should run (a row, not retiring) with a step of its loop running now
                "working": sum(1 for r in rows if not r.retiring and (r.token, r.loop_id) in running),
                # live: a token with a row, or with a loop step running (see docs/reliability.md)
                "live": len({r.token for r in rows} | {token for token, _ in running}),
            }
        processed = len(processed_counts(self.o.deployed, vendor))
        sample = {"t": self.t(), "queues": queues, "processed": processed, "vendor_calls": vendor.count()}
        return {**sample, "run": self._run_progress()}

    def _run_progress(self) -> dict[str, Any] | None:
        try:
            return self.job_run.progress() if self.job_run else None
        except Exception:  # the view goes without it this second; the report reads it again at the end
            return None

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
        self.view.show(sample, sent=len(self.fed_ids), messages=len(self.pipeline.jobs), revived=self.revived)


def run_demo(options: DemoOptions) -> dict[str, Any]:
    return Demo(options).run()
