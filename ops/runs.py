"""`sqs-loops runs [--json]` and `sqs-loops runs watch NAME`: the runs of a deployment, and one run's live
progress until it ends (docs/runs.md). The counting is the loops'; this only reads the run rows."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import boto3

from poller.aws.arn import partition_of
from poller.clock import SYSTEM_CLOCK, Clock
from poller.runs import RunBook, RunStatus, sns_publisher
from producer import list_runs, run_status

LEARN_MIN_MESSAGES = 10
"""Messages a run must have measured on a queue before ``send --plan`` takes its mean job time."""

WATCH_INTERVAL_S = 2.0
"""Between two reads of the run while watching: one consistent GetItem (half a read unit) each."""


def add_runs_parser(commands: Any) -> None:
    """Register ``runs`` (and ``runs watch``) on the CLI's subcommands."""
    runs = commands.add_parser("runs", help="list runs: total, done, failed, state; `runs watch NAME` follows one")
    runs.add_argument("--json", action="store_true", help="print JSON instead of a table")
    actions = runs.add_subparsers(dest="runs_command", metavar="ACTION")
    watch = actions.add_parser("watch", help="a live progress bar of one run until it finishes")
    watch.add_argument("name", help="the run's name")
    watch.add_argument("--interval", type=float, default=WATCH_INTERVAL_S, help="seconds between reads (default 2)")


def cli_book(args: argparse.Namespace, *, publish: bool = False) -> RunBook:
    """The deployment's run book from the CLI's ``--prefix``, ``--region`` and ``--endpoint-url``; with
    ``publish`` it can also publish a notice (a send whose take-back completes its run)."""
    if not args.prefix:
        raise ValueError("give --prefix (the stack's <service>-<stage>) or set LOOPS_PREFIX")
    if args.endpoint_url:  # a stand-in accepts any credentials; do not make the user invent some
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    kwargs = {"region_name": args.region, "endpoint_url": args.endpoint_url}
    dynamodb = boto3.client("dynamodb", **kwargs)
    publisher = None
    if publish:
        account = boto3.client("sts", **kwargs).get_caller_identity()["Account"]
        topic = f"arn:{partition_of(args.region)}:sns:{args.region}:{account}:{args.prefix}-runs"
        publisher = sns_publisher(boto3.client("sns", **kwargs), topic)
    return RunBook.of(dynamodb, f"{args.prefix}-tokens", publish=publisher)


def learned_mean_job_s(args: argparse.Namespace) -> tuple[float, str]:
    """The mean seconds per message that the newest run measured on the queue (a config key), and a line
    saying where the figure came from. Raises ValueError when there is none to learn from."""
    from poller.config import config_path, load_config

    path = args.config or config_path()
    keys = load_config(path).queues if (args.config or path.exists()) else {}
    if args.queue not in keys:
        raise ValueError(
            f"--plan needs --mean-job-s: {args.queue!r} is no queue key of the config, so no run's figures apply"
        )
    if not args.prefix:
        raise ValueError("--plan needs --mean-job-s, or --prefix to learn it from the runs the loops recorded")
    for status in list_runs(book=cli_book(args)):
        measured = status.mean_job_s(args.queue)
        if measured is not None and measured[1] >= LEARN_MIN_MESSAGES:
            mean_s, count = measured
            started = _iso(status)["started_at"]
            return mean_s, (
                f"mean job time {mean_s:.3g} s: measured by the loops of {args.queue} on {count} messages of "
                f"run {status.run} (started {started}; {status.state})"
            )
    raise ValueError(
        f"--plan needs --mean-job-s: no run has measured {LEARN_MIN_MESSAGES} or more messages on {args.queue} yet"
    )


def run_runs(args: argparse.Namespace, *, out: TextIO | None = None, clock: Clock = SYSTEM_CLOCK) -> int:
    out = out or sys.stdout
    book = cli_book(args)
    if args.runs_command == "watch":
        return watch(book, args.name, out=out, interval_s=args.interval, clock=clock, as_json=args.json)
    statuses = list_runs(book=book)
    if args.json:
        print(json.dumps([s.as_dict() | _iso(s) for s in statuses], indent=2), file=out)
    else:
        _table(statuses, out)
    return 0


def _iso(status: RunStatus) -> dict[str, str | None]:
    def iso(ms: int | None) -> str | None:
        return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")

    return {"started_at": iso(status.started_at), "finished_at": iso(status.finished_at)}


def _table(statuses: list[RunStatus], out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out)
    if not statuses:
        console.print("no runs")
        return
    table = Table("run", "total", "done", "failed", "state", "started_at", "finished_at", box=None)
    for status in statuses:
        times = _iso(status)
        table.add_row(
            status.run,
            str(status.total),
            str(status.done),
            str(status.failed),
            status.state,
            times["started_at"] or "-",
            times["finished_at"] or "-",
        )
    console.print(table)


def watch(
    book: RunBook, name: str, *, out: TextIO, interval_s: float, clock: Clock = SYSTEM_CLOCK, as_json: bool = False
) -> int:
    """Follow a run until it finishes: a rich progress bar (done + failed of total, rate, time to finish) on
    a terminal, a plain line per change elsewhere. Exit 0 when finished with nothing failed, 1 with failures."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    status = run_status(name, book=book)
    if status is None:
        raise ValueError(f"no run named {name!r} (sqs-loops runs lists them)")
    console = Console(file=out)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    last: tuple[int, int, int] | None = None
    first = (clock.monotonic(), status.done + status.failed)
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task(name, total=max(status.total, 1), failed=0, rate="")
        while True:
            counted = status.done + status.failed
            progress.update(
                task,
                total=max(status.total, 1),
                completed=counted,
                failed=status.failed,
                rate=_rate(first, counted, clock),
            )
            if not console.is_terminal and (status.total, status.done, status.failed) != last:
                line = status.as_dict() | _iso(status)
                print(json.dumps(line) if as_json else _line(status), file=out, flush=True)
                last = (status.total, status.done, status.failed)
            if status.finished_at is not None:
                break
            clock.sleep(interval_s)
            status = run_status(name, book=book) or status
    if console.is_terminal:
        console.print(_line(status))
    return 0 if status.failed == 0 else 1


def _rate(first: tuple[float, int], counted: int, clock: Clock) -> str:
    """Messages counted a second since the watch began (what the time to finish is estimated from)."""
    elapsed = clock.monotonic() - first[0]
    return "" if elapsed <= 0 else f"{(counted - first[1]) / elapsed:.1f} msg/s"


def _line(status: RunStatus) -> str:
    times = _iso(status)
    head = f"{status.run}: {status.done + status.failed}/{status.total} ({status.done} done, {status.failed} failed), {status.state}"
    if status.finished_at is not None and status.started_at is not None:
        head += f" at {times['finished_at']} after {(status.finished_at - status.started_at) / 1000:.1f} s"
    return head
