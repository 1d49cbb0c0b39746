"""`sqs-loops send QUEUE FILE`: many messages from a file, with message timers, a progress bar and a
summary (docs/producers.md). The sending itself is producer/send.py, the library producers call."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path
from typing import Any, TextIO

import boto3
from botocore.exceptions import ClientError

from ops.console import Bar, console
from poller.aws.errors import QUEUE_MISSING_CODES, error_code
from poller.config import config_path, load_config
from producer import (
    Jitter,
    SendIncomplete,
    SendReport,
    SpreadPlan,
    Timers,
    parse_jitter,
    plan_spread,
    send_messages,
    start_run,
)

EXIT_SOME_FAILED = 1
"""Some messages were refused; each is named on stderr (bad input and whole-send failures exit 2)."""


def add_send_parser(commands: Any) -> None:
    """Register ``send`` on the CLI's subcommands."""
    send = commands.add_parser(
        "send", help="send many messages from a file in batches of 10, spread with message timers"
    )
    send.add_argument("queue", help="queue key of the config, queue URL, or queue name")
    send.add_argument("file", help="one message per line, or a JSON array; - for stdin")
    send.add_argument(
        "--format",
        choices=("auto", "lines", "json"),
        default="auto",
        help="auto (default): a JSON array if the whole file is one, else lines",
    )
    timers = send.add_mutually_exclusive_group()
    timers.add_argument("--jitter", metavar="LOW-HIGH", help="delay each message LOW-HIGH seconds at random (0-900)")
    timers.add_argument(
        "--plan", action="store_true", help="spread the messages so that about --max-concurrency jobs run at once"
    )
    send.add_argument(
        "--mean-job-s",
        type=float,
        help="with --plan: mean seconds one job takes (default: what the newest run measured on the queue key)",
    )
    send.add_argument("--max-concurrency", type=int, help="with --plan: jobs that may run at once")
    send.add_argument(
        "--consumer-rate",
        type=float,
        help="with --plan: jobs a second the consumers allow (default: the queue's rate_limit, for a config key)",
    )
    send.add_argument("--spread", choices=("even", "random"), default="even", help="with --plan (default even)")
    send.add_argument("--seed", type=int, help="makes jitter and random spreads reproducible")
    send.add_argument("--group-id", help="MessageGroupId for a FIFO queue (no timers there)")
    send.add_argument("--dry-run", action="store_true", help="read the file and print the plan; send nothing")
    send.add_argument(
        "--run", metavar="NAME", help="send the messages as (or into) the run NAME: counted, one notice when done"
    )


def run_send(args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    bodies = read_messages(args.file, args.format)
    if args.plan and args.mean_job_s is None:  # learn it from what recent runs took (docs/runs.md)
        from ops.runs import learned_mean_job_s

        args.mean_job_s, source = learned_mean_job_s(args)
        print(source, file=out)
    timers = _timers(args, len(bodies))
    if isinstance(timers, (SpreadPlan, Jitter)):
        print(timers.summary(), file=out)
    if args.dry_run:
        print(f"dry run: {len(bodies)} messages read from {args.file}; nothing sent", file=out)
        return 0
    if args.endpoint_url:  # a stand-in accepts any credentials; do not make the user invent some
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("sqs", region_name=args.region, endpoint_url=args.endpoint_url)
    queue_url = resolve_queue_url(client, args.queue, args.config)
    book = None
    if args.run:
        from ops.runs import cli_book

        book = cli_book(args, publish=True)
        start_run(args.run, book=book, exist_ok=True)
    progress = Bar(console(err), "send", len(bodies))
    try:
        report = send_messages(
            client,
            queue_url,
            bodies,
            timers=timers,
            group_id=args.group_id,
            rand=random.Random(args.seed),
            on_progress=lambda sent, failed, total: progress.update(sent + failed, total, f"{failed} failed"),
            run=args.run,
            book=book,
        )
    except BaseException as exc:
        progress.close()
        if isinstance(exc, SendIncomplete):  # name those refused before it stopped; the error line says the rest
            _name_failed(exc.report, err)
        raise
    progress.close()
    print(report.summary(), file=out)
    if args.run:
        print(f"run {args.run}: follow it with `sqs-loops runs watch {args.run}`", file=out)
    _name_failed(report, err)
    return 0 if report.ok else EXIT_SOME_FAILED


def _name_failed(report: SendReport, err: TextIO) -> None:
    for failed in report.failed:
        print(f"sqs-loops: not sent: {failed}", file=err)


def _timers(args: argparse.Namespace, jobs: int) -> Timers | None:
    plan_options = {"--mean-job-s": args.mean_job_s, "--max-concurrency": args.max_concurrency}
    if args.plan:
        missing = [name for name, value in plan_options.items() if value is None]
        if missing:
            raise ValueError(f"--plan needs {' and '.join(missing)}")
        return plan_spread(
            jobs,
            args.mean_job_s,
            args.max_concurrency,
            consumer_rate_per_s=args.consumer_rate or _config_rate_limit(args.queue, args.config),
            spread=args.spread,
        )
    given = [name for name, value in {**plan_options, "--consumer-rate": args.consumer_rate}.items() if value]
    if given:
        raise ValueError(f"{', '.join(given)}: only with --plan")
    return parse_jitter(args.jitter) if args.jitter else None


def read_messages(file: str, form: str = "auto") -> list[str]:
    """The messages of ``file`` (``-``: stdin): one per non-empty line, or the elements of a JSON array
    (strings as they are, anything else as its JSON)."""
    text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    where = "stdin" if file == "-" else file
    messages: list[str] | None = None
    if form in ("auto", "json"):
        messages = _json_array(text, where, required=form == "json")
    if messages is None:
        messages = [line for line in text.splitlines() if line.strip()]
    if not messages:
        raise ValueError(f"{where}: no messages")
    return messages


def _json_array(text: str, where: str, *, required: bool) -> list[str] | None:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if required:
            raise ValueError(f"{where}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
        return None
    if not isinstance(data, list):
        if required:
            raise ValueError(f"{where}: expected a JSON array, got a JSON {type(data).__name__}")
        return None
    return [item if isinstance(item, str) else json.dumps(item, separators=(",", ":")) for item in data]


def _config_rate_limit(queue: str, config: Path | None) -> float | None:
    """The ``rate_limit`` of ``queue`` when it is a queue key of the config: what the consumers allow."""
    path = config or config_path()
    if config is None and not path.exists():
        return None
    queues = load_config(path).queues
    return queues[queue].rate_limit if queue in queues else None


def resolve_queue_url(client: Any, queue: str, config: Path | None) -> str:
    """A queue key of the config (``--config``, else ``$SQS_LOOPS_CONFIG`` or ``queues.yml`` when there
    is one), a queue URL, or a queue name in this account and region."""
    if queue.startswith(("https://", "http://")):
        return queue
    name = queue
    path = config or config_path()
    if config is not None or path.exists():
        queues = load_config(path).queues
        if queue in queues:
            given = queues[queue].queue_url_given
            if given is not None:
                return given
            name = queues[queue].queue_name
    try:
        return str(client.get_queue_url(QueueName=name)["QueueUrl"])
    except ClientError as exc:
        if error_code(exc) in QUEUE_MISSING_CODES:
            key = f"{queue!r} is no queue key in {path}, and " if name == queue else ""
            raise ValueError(f"{key}no queue named {name!r} exists in this account and region") from None
        raise
