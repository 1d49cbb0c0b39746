"""The sandbox: a moto server on loopback, resources from the config's rendering, a local Lambda runtime,
an alarm evaluator and the restart schedule, with compressed periods. The framework's own code runs
unchanged; only AWS is stood in for.

With ``deployed=True`` the resources come from a real `serverless deploy` into the moto server instead
(sandbox/deployed.py), and the functions run from their deployed package (sandbox/containers.py)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from poller.config import Config, load_config
from poller.logs import log
from sandbox import faults as fault_hooks
from sandbox import moto_sqs
from sandbox.alarm_evaluator import AlarmEvaluator
from sandbox.containers import ContainerPool
from sandbox.deployed import Deployment, check_faults, deploy, deployed_prefix
from sandbox.faults import FaultPlan, TokenTrace
from sandbox.lambda_runtime import ACCOUNT, REGION, LocalFunction, LocalLambda, forward_log
from sandbox.resources import create_existing_queues, create_resources
from sandbox.sqs_metrics import MetricTimings

_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_LAMBDA",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "LOOPS_TABLE",
    "LOOPS_PREFIX",
    "POLLER_FUNCTION",
    "SCALE_UP_FUNCTION",
    "SQS_LOOPS_CONFIG",
    "LOOPS_RUNS_TOPIC",
)


@dataclass(frozen=True)
class Timings:
    """Compressed periods (seconds): CloudWatch evaluates every minute and restart runs every minute on AWS."""

    alarm_period_s: float = 3.0
    restart_period_s: float = 4.0
    # SQS's metrics as CloudWatch gets them (sandbox/sqs_metrics.py, docs/operations.md), AWS's / 20.
    metric_lag_s: float = 3.0
    dormant_after_s: float = 1080.0
    resume_after_s: float = 45.0

    def metrics(self) -> MetricTimings:
        return MetricTimings(self.alarm_period_s, self.metric_lag_s, self.dormant_after_s, self.resume_after_s)


class Ticker:
    """Calls ``tick`` every ``period_s`` seconds in a thread until stopped; a failing tick is logged."""

    def __init__(self, name: str, period_s: float, tick: Callable[[], None]):
        self.tick, self.period_s = tick, period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self.tick()
            except Exception as exc:
                log("warning", "sandbox_tick_failed", ticker=self._thread.name, error=repr(exc))


def reset_cached_clients() -> None:
    """Forget clients and table models bound to a previous sandbox's endpoints."""
    import poller.handler
    import scaler.handlers
    from poller.lease.tokens import bind_token_table
    from scaler.holds import bind_hold_table
    from scaler.overrides import bind_override_table

    poller.handler._config.cache_clear()
    poller.handler._services.cache_clear()
    scaler.handlers.control_plane.cache_clear()
    scaler.handlers.run_book.cache_clear()
    bind_token_table.cache_clear()
    bind_override_table.cache_clear()
    bind_hold_table.cache_clear()


@dataclass
class Sandbox:
    config_path: Path
    prefix: str = "sqs-loops-sandbox"
    timings: Timings = field(default_factory=Timings)
    faults: FaultPlan = field(default_factory=FaultPlan)
    root: Path = field(default_factory=Path.cwd)
    deployed: bool = False  # a real `serverless deploy` into the sandbox; functions run from the package

    def __post_init__(self) -> None:
        if self.deployed:
            check_faults(kind for kind, p in self.faults.probabilities.items() if p)
            wanted = deployed_prefix(self.root)
            if self.prefix not in (wanted, type(self).prefix):
                raise ValueError(f"--prefix {self.prefix}: a deployed sandbox's prefix is the stack's, {wanted}")
            self.prefix = wanted
        self.config: Config = load_config(self.config_path)
        self.deployment: Deployment | None = None
        self._workdir: Path | None = None
        self.region, self.account = REGION, ACCOUNT
        self.endpoint_url = ""
        self._tickers: list[Ticker] = []
        self._saved: dict[str, str | None] = {}
        self._moto: Any = None
        self.alerts: list[dict[str, Any]] = []
        self.token_trace = TokenTrace(f"{self.prefix}-tokens")
        self._subscribers: dict[str, str] = {}  # topic name -> the function it invokes
        self._network: dict[str, str] = {}  # what stands in for the AWS network, for the containers

    @property
    def functions(self) -> dict[str, str]:
        p = self.prefix
        return {
            "poller": f"{p}-poller",
            "scale_up": f"{p}-scaleUp",
            "scale_down": f"{p}-scaleDown",
            "restart": f"{p}-restart",
        }

    def queue_url(self, key: str) -> str:
        return self.config.queue(key).queue_url(region=self.region, account_id=self.account)

    def dlq_url(self, key: str) -> str:
        """Every sandbox queue has a DLQ: the configured one, or the one resources.py made beside it."""
        queue = self.config.queue(key)
        configured = queue.dlq_url(region=self.region, account_id=self.account)
        return configured or queue.ref.beside(queue.stack_dlq_name).url_in(region=self.region, account_id=self.account)

    def start(self) -> Sandbox:
        """Start everything; on any failure, undo what was started (servers, environment) and re-raise."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Sandbox:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the moto server's one line per request
        # moto's CloudFormation warns of each resource it skips; deployed.py reports them itself.
        logging.getLogger("moto").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", message="Tried to parse .* not supported by moto", category=UserWarning)

        self._saved = {name: os.environ.get(name) for name in _ENV}
        moto_sqs.install()  # moto can hand one message to two receivers, and undo a delete; SQS does neither
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        # moto keeps its state per process, not per server: start from an empty account.
        requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()

        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            os.environ.pop(name, None)
        f = self.functions
        os.environ.update(
            AWS_ENDPOINT_URL=self.endpoint_url,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION=self.region,
            AWS_REGION=self.region,
            LOOPS_TABLE=f"{self.prefix}-tokens",
            LOOPS_PREFIX=self.prefix,
            POLLER_FUNCTION=f["poller"],
            SCALE_UP_FUNCTION=f["scale_up"],
            SQS_LOOPS_CONFIG=str(self.config_path),
        )
        self._network.update(
            {
                k: os.environ[k]
                for k in (
                    "AWS_ENDPOINT_URL",
                    "AWS_ACCESS_KEY_ID",
                    "AWS_SECRET_ACCESS_KEY",
                    "AWS_DEFAULT_REGION",
                    "AWS_REGION",
                )
            }
        )
        reset_cached_clients()
        # Before any client is made: every session made from now on carries the fault and trace hook.
        fault_hooks.install(self.faults, self.token_trace)
        if self.deployed:
            self.runtime = self._deploy()
        else:
            timeout = float(self.config.poller.timeout_s)
            self.runtime = LocalLambda(
                functions={
                    f["poller"]: LocalFunction(f["poller"], "poller.handler.handler", timeout),
                    f["scale_up"]: LocalFunction(f["scale_up"], "scaler.handlers.scale_up", 30),
                    f["scale_down"]: LocalFunction(f["scale_down"], "scaler.handlers.scale_down", 30),
                    f["restart"]: LocalFunction(f["restart"], "scaler.handlers.restart", self.timings.restart_period_s),
                },
                faults=self.faults,
            )
            self._subscribers = {f"{self.prefix}-scale-up": f["scale_up"], f"{self.prefix}-scale-down": f["scale_down"]}
        os.environ["AWS_ENDPOINT_URL_LAMBDA"] = self.runtime.start()
        self._network["AWS_ENDPOINT_URL_LAMBDA"] = os.environ["AWS_ENDPOINT_URL_LAMBDA"]
        if not self.deployed:
            topics = create_resources(self.config, prefix=self.prefix, root=self.root, region=self.region)
            # As serverless.yml sets it (a deployed stack's functions get it from their own environment).
            os.environ["LOOPS_RUNS_TOPIC"] = topics[f"{self.prefix}-runs"]
        self.evaluator = AlarmEvaluator(
            self.prefix, self.region, self.account, self._deliver, self.faults, self.timings.metrics()
        )
        self._tickers = [
            Ticker("alarm-evaluator", self.timings.alarm_period_s, self.evaluator.evaluate),
            Ticker("restart-schedule", self.timings.restart_period_s, self.run_restart),
        ]
        for ticker in self._tickers:
            ticker.start()
        log("info", "sandbox_started", endpoint_url=self.endpoint_url, prefix=self.prefix)
        return self

    def _deploy(self) -> LocalLambda:
        """`serverless deploy` into moto; the functions as deployed, each run from its package."""
        create_existing_queues(self.config, region=self.region)  # what the stack expects the account to hold
        self._workdir = Path(tempfile.mkdtemp(prefix="sqs-loops-deployed-"))
        self.deployment = deploy(
            root=self.root,
            config_path=self.config_path,
            endpoint_url=self.endpoint_url,
            region=self.region,
            account=self.account,
            workdir=self._workdir,
        )
        # The subscriptions as deployed decide which function an alarm's topic wakes.
        self._subscribers = dict(self.deployment.fill.subscriptions)
        pool = ContainerPool(extra_env=self._network, on_log=forward_log)
        functions = {
            name: LocalFunction(name, package.handler, package.timeout_s, package=package)
            for name, package in self.deployment.functions.items()
        }
        return LocalLambda(functions=functions, faults=self.faults, containers=pool)

    def run_restart(self) -> None:
        """What the schedule does: an async invoke of restart with a scheduled event."""
        self.runtime.invoke_async(self.functions["restart"], {"source": "aws.events", "detail-type": "Scheduled Event"})

    def _deliver(self, topic_name: str, event: dict[str, Any]) -> None:
        subscriber = self._subscribers.get(topic_name)
        if subscriber is None:
            self.alerts.append(event)  # the alerts topic: an operator's inbox
            return
        self.runtime.invoke_async(subscriber, event)

    def stop(self) -> None:
        for ticker in self._tickers:
            ticker.stop()
        if hasattr(self, "runtime"):
            self.runtime.stop()
        fault_hooks.uninstall()
        if self._moto is not None:
            self._moto.stop()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        for name, value in self._saved.items():  # empty if start() never got that far
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_cached_clients()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
