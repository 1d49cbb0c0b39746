"""`sqs-loops`: the operator's command line, for a deployment on AWS or a sandbox (docs/operations.md)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from ops.console import console
from ops.cost_command import add_cost_command, run_cost
from ops.logs import cloudwatch_lines, counts_from_file, file_lines, parse_since, queue_lines, show_logs
from ops.operator import RedriveIncomplete
from ops.runs import add_runs_parser, run_runs
from ops.send import add_send_parser, run_send
from ops.status_view import WATCH_INTERVAL_S, recent_metrics, show_status
from poller.config import config_path, load_config
from poller.exceptions import SqsLoopsError
from sandbox.faults import FAULT_KINDS, parse_faults

__all__ = ["build_parser", "main", "parse_faults"]

DEPLOYED_HELP = (
    "`serverless deploy --stage local` into the sandbox and run the functions from the deployed package"
    " (docs/deploy.md#deploying-into-the-sandbox)"
)
SANDBOX_LOG = Path("sandbox-out/sandbox.log")
"""Where `sqs-loops sandbox` writes its functions' log lines, and where `logs` reads them locally."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sqs-loops",
        description="Operate sqs-loops deployments (on AWS or a sandbox), run a sandbox, or run the demo.",
    )
    parser.add_argument("--endpoint-url", help="an AWS stand-in to talk to, e.g. the one `sqs-loops sandbox` prints")
    parser.add_argument(
        "--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    )
    parser.add_argument(
        "--prefix",
        default=os.environ.get("LOOPS_PREFIX"),
        help="the stack's <service>-<stage> (default: $LOOPS_PREFIX)",
    )
    parser.add_argument("--config", type=Path, help="the config file (default: $SQS_LOOPS_CONFIG, else queues.yml)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    status = commands.add_parser(
        "status", help="per queue: depth, DLQ, wanted and live loops, heartbeats, alarms, overrides"
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.add_argument("--watch", action="store_true", help="redraw every few seconds until Ctrl-C")
    status.add_argument("--interval", type=float, default=WATCH_INTERVAL_S, help="seconds between redraws (--watch)")
    logs = commands.add_parser("logs", help="one queue's log lines (CloudWatch Logs, or a sandbox's log file)")
    logs.add_argument("queue", help="queue key")
    logs.add_argument("--since", default="10m", help="how far back: 30s, 10m, 2h, 1d (default 10m)")
    logs.add_argument("--follow", action="store_true", help="keep printing new lines until Ctrl-C")
    logs.add_argument("--file", type=Path, help=f"a sandbox's log file (default with --endpoint-url: {SANDBOX_LOG})")
    logs.add_argument("--json", action="store_true", help="print the JSON lines as they are")
    scale = commands.add_parser("scale", help="pin a queue to N loops until `resume`")
    scale.add_argument("queue", help="queue key")
    scale.add_argument("loops", type=int, help="loops to hold (0 to max_loops)")
    scale.add_argument("--note", help="why, for the next operator")
    pause = commands.add_parser("pause", help="pin a queue to 0 loops until `resume`")
    pause.add_argument("queue", help="queue key")
    pause.add_argument("--note", help="why, for the next operator")
    resume = commands.add_parser("resume", help="clear a queue's pin: its alarms decide again")
    resume.add_argument("queue", help="queue key")
    redrive = commands.add_parser("redrive", help="move a queue's dead-letter queue back to it")
    redrive.add_argument("queue", help="queue key")

    sandbox = commands.add_parser(
        "sandbox", help="start a sandbox and keep it running, printing its endpoint (config: the demo's, or --config)"
    )
    sandbox.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    sandbox.add_argument("--deployed", action="store_true", help=DEPLOYED_HELP)
    sandbox.add_argument(
        "--log", type=Path, default=SANDBOX_LOG, help=f"where its functions log (default {SANDBOX_LOG})"
    )

    demo = commands.add_parser("demo", help="run the whole system on a sandbox with a burst of messages")
    demo.add_argument(
        "--messages", type=int, default=2600, help="vendor calls the pipeline makes, about (default 2600: 65 jobs)"
    )
    demo.add_argument("--report", type=Path, default=Path("demo-out/report.json"))
    demo.add_argument("--chart", type=Path, default=Path("demo-out/queue-depth.png"))
    demo.add_argument("--seed", type=int, default=0, help="fixes the message mix and the faults' draws")
    demo.add_argument("--feed-seconds", type=float, default=5.0, help="the burst is sent over this long")
    demo.add_argument(
        "--faults",
        help=f"name=probability,... with names {', '.join(sorted(FAULT_KINDS))}; they stop when the feed ends",
    )
    demo.add_argument("--deployed", action="store_true", help=DEPLOYED_HELP)
    add_send_parser(commands)
    add_runs_parser(commands)
    add_cost_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except ImportError as exc:  # the sandbox's own tools (moto, matplotlib) are an extra
        print(
            f"sqs-loops: error: {exc.name or exc} is not installed: pip install 'sqs-loops[sandbox]'", file=sys.stderr
        )
        return 2
    except (
        SqsLoopsError,
        PynamoDBException,
        ClientError,
        BotoCoreError,
        ValueError,
        OSError,
        RedriveIncomplete,
    ) as exc:
        print(f"sqs-loops: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "cost":
        return run_cost(args)
    if args.command == "demo":
        return _demo(args)
    if args.command == "sandbox":
        return _sandbox(args)
    if args.command == "send":
        return run_send(args)
    if args.command == "runs":
        return run_runs(args)
    if args.command == "logs":
        return _logs(args)
    from ops.operator import Operator

    if not args.prefix:
        raise ValueError("give --prefix (the stack's <service>-<stage>) or set LOOPS_PREFIX")
    config = load_config(args.config or config_path())
    operator = Operator(config, args.prefix, args.region, endpoint_url=args.endpoint_url)
    if args.command == "status":
        if args.interval <= 0:
            raise ValueError(f"--interval: expected seconds above 0, got {args.interval:g}")
        # A sandbox's metrics live only in its log file: count handled and failed from there.
        log_file = SANDBOX_LOG if args.endpoint_url and SANDBOX_LOG.exists() else None
        show_status(
            lambda: _status(operator, config, log_file), as_json=args.json, watch=args.watch, interval_s=args.interval
        )
    elif args.command == "scale":
        operator.pin(args.queue, args.loops, args.note)
        print(f"{args.queue}: pinned to {args.loops} loops (restart applies it within a minute)")
    elif args.command == "pause":
        operator.pin(args.queue, 0, args.note)
        print(f"{args.queue}: paused (0 loops) until `sqs-loops resume {args.queue}`")
    elif args.command == "resume":
        operator.resume(args.queue)
        print(f"{args.queue}: resumed; its alarms decide its loops again")
    elif args.command == "redrive":
        print(f"{args.queue}: {operator.redrive(args.queue)}")
    return 0


def _status(operator: Any, config: Any, log_file: Path | None) -> dict[str, Any]:
    report: dict[str, Any] = operator.status()
    try:
        recent = recent_metrics(operator.cloudwatch, operator.prefix, config)
    except (ClientError, BotoCoreError) as exc:  # no cloudwatch:GetMetricData: the rest still shows
        print(f"sqs-loops: metrics not read: {exc}", file=sys.stderr)
        recent = {}
    from_file = counts_from_file(log_file) if log_file is not None else {}
    for key, values in recent.items():
        report[key].update(values)
        if values.get("handled_a_minute") is None and log_file is not None:
            report[key].update(from_file.get(key, {"handled_a_minute": 0, "failed_a_minute": 0}))
    return report


def _logs(args: argparse.Namespace) -> int:
    config = load_config(args.config or config_path())
    config.queue(args.queue)  # an unknown key fails here, with its name
    since_s = parse_since(args.since)
    if args.file or args.endpoint_url:
        raw = file_lines(args.file or SANDBOX_LOG, since_s=since_s, follow=args.follow)
    else:
        if not args.prefix:
            raise ValueError("give --prefix (the stack's <service>-<stage>) or set LOOPS_PREFIX")
        import boto3

        logs = boto3.client("logs", region_name=args.region)
        raw = cloudwatch_lines(logs, args.prefix, args.queue, since_s=since_s, follow=args.follow)
    show_logs(console(), queue_lines(raw, args.queue), as_json=args.json)
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    from sandbox.demo import handlers
    from sandbox.demo.run import DEMO_CONFIG
    from sandbox.demo.trace import logs_to
    from sandbox.demo.vendor_api import VendorApi
    from sandbox.environment import Sandbox

    vendor = VendorApi()
    os.environ[handlers.VENDOR_ENV] = vendor.start()
    config = args.config or DEMO_CONFIG
    if args.deployed:
        print("sqs-loops: serverless deploy --stage local into the sandbox (about 30 s)...", file=sys.stderr)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    with Sandbox(config, prefix=args.prefix or "sqs-loops-sandbox", deployed=args.deployed) as box, logs_to(args.log):
        box.run_restart()
        code = f"  code from the deployed package of stack {box.deployment.stack}" if box.deployment else ""
        print(
            f"sandbox running: endpoint {box.endpoint_url}  prefix {box.prefix}  config {config}{code}  logs {args.log}"
        )
        if box.deployment is not None:
            print(f"deployed in {box.deployment.seconds:g} s; {box.deployment.summary()}")
        print("talk to it with, for example:")
        print(f"  sqs-loops --endpoint-url {box.endpoint_url} --prefix {box.prefix} --config {config} status --watch")
        print(f"  sqs-loops --endpoint-url {box.endpoint_url} --config {config} logs QUEUE --file {args.log} --follow")
        print(
            f"  AWS_ENDPOINT_URL={box.endpoint_url} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing aws sqs list-queues"
        )
        sys.stdout.flush()
        end = time.monotonic() + args.seconds if args.seconds else None
        while end is None or time.monotonic() < end:
            time.sleep(0.2)
    vendor.stop()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from sandbox.demo.run import DEMO_CONFIG, DemoOptions, run_demo

    faults = parse_faults(args.faults)
    if args.messages < 1:
        raise ValueError(f"--messages: expected a positive number, got {args.messages}")
    report = run_demo(
        DemoOptions(
            messages=args.messages,
            report=args.report,
            chart=args.chart,
            seed=args.seed,
            config=args.config or DEMO_CONFIG,
            feed_s=args.feed_seconds,
            faults=faults,
            deployed=args.deployed,
        )
    )
    keys = ("sent", "processed", "duplicates", "dlq", "lost", "in_queue", "revived", "double_owned")
    summary = {k: report[k] for k in (*keys, "time_to_converge_s", "duration_s")}
    print("demo: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    if report["deployed"]:
        print(f"demo: the code ran from the deployed package of stack {report['deployed']['stack']}")
    if report["faults"]:
        print("demo: faults injected " + ", ".join(f"{k} {v}" for k, v in report["faults_injected"].items()))
    if report["lost"]:
        print(f"demo: {report['lost']} messages were lost", file=sys.stderr)
    broken = [name for name, holds in report["invariants"].items() if not holds]
    if broken:
        print(f"demo: invariants broken: {', '.join(broken)} (see docs/reliability.md)", file=sys.stderr)
        return 1
    if not report["settled"]:
        print(f"demo: did not settle in time; {report['in_queue']} messages still queued (not lost)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
