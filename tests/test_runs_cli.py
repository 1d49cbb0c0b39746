"""`sqs-loops send --run`, `sqs-loops runs [--json]` and `sqs-loops runs watch` through the CLI's main,
against moto in-process, with loops that really count the run."""

from __future__ import annotations

import io
import json
import random
import re
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import sample_handlers
from conftest import REGION, config_for, make_queue
from runs_rig import run_loop

from ops.cli import main
from ops.runs import watch
from poller.lease.tokens import TokenStore, bind_token_table
from poller.runs import RunBook, RunCounter
from poller.sqs.client import QueueClient
from poller.sqs.redrive import RedriveLimit

PREFIX = "cli-test"


@pytest.fixture
def table(sqs: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TokenStore:
    monkeypatch.chdir(tmp_path)  # away from the repository's queues.yml: a queue name is a name
    model = bind_token_table(f"{PREFIX}-tokens", region=REGION)
    model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
    boto3.client("sns", region_name=REGION).create_topic(Name=f"{PREFIX}-runs")
    return TokenStore(model)


def book() -> RunBook:
    return RunBook.of(boto3.client("dynamodb", region_name=REGION), f"{PREFIX}-tokens")


def test_send_a_file_as_a_run_list_it_and_see_it_finish(
    sqs: Any, table: TokenStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = make_queue(sqs, "pages")
    (tmp_path / "pages.txt").write_text("\n".join(f"page {n}" for n in range(12)))

    assert main(["--prefix", PREFIX, "send", "pages", str(tmp_path / "pages.txt"), "--run", "crawl"]) == 0
    assert "runs watch crawl" in capsys.readouterr().out
    assert main(["--prefix", PREFIX, "runs", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert {k: listed[k] for k in ("run", "total", "done", "failed", "state", "finished_at")} == {
        "run": "crawl",
        "total": 12,
        "done": 0,
        "failed": 0,
        "state": "running",
        "finished_at": None,
    }
    assert listed["started_at"].endswith("+00:00")

    run_loop(sqs, table, url, book())

    assert main(["--prefix", PREFIX, "runs"]) == 0
    text = capsys.readouterr().out
    assert "crawl" in text and "finished" in text and "12" in text
    assert main(["--prefix", PREFIX, "runs", "watch", "crawl"]) == 0
    assert "crawl: 12/12 (12 done, 0 failed), finished" in capsys.readouterr().out


def test_sending_again_into_a_running_run_adds_to_it(sqs: Any, table: TokenStore, tmp_path: Path) -> None:
    make_queue(sqs, "more")
    (tmp_path / "a.txt").write_text("a\nb\n")
    assert main(["--prefix", PREFIX, "send", "more", str(tmp_path / "a.txt"), "--run", "r"]) == 0
    assert main(["--prefix", PREFIX, "send", "more", str(tmp_path / "a.txt"), "--run", "r"]) == 0
    status = book().table.get("r")
    assert status is not None and status.total == 4


def test_watch_follows_the_run_until_it_ends(sqs: Any, table: TokenStore) -> None:
    url = make_queue(sqs, "watched")
    runs = book()
    from producer import send_messages, start_run

    start_run("w", book=runs)
    send_messages(sqs, url, [f"m{n}" for n in range(30)], run="w", book=runs)
    queue = config_for(url).queue("work")
    counter = RunCounter(
        runs,
        queue=queue,
        redrive=RedriveLimit(
            QueueClient(sqs, url, runs.clock, random.Random(1)), fallback=queue.known_max_receives, log_fields={}
        ),
        retry=lambda c, _: c(),
        log_fields={},
    )

    class LoopsAtWork:
        """The watch's sleep: meanwhile a loop counts a batch of ten."""

        def time(self) -> float:
            return runs.clock.time()

        def monotonic(self) -> float:
            return runs.clock.monotonic()

        def sleep(self, seconds: float) -> None:
            batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])["Messages"]
            counter.count(batch, [])

    out = io.StringIO()
    assert watch(runs, "w", out=out, interval_s=0, clock=LoopsAtWork()) == 0
    lines = out.getvalue().splitlines()
    assert lines == [
        "w: 0/30 (0 done, 0 failed), running",
        "w: 10/30 (10 done, 0 failed), running",
        "w: 20/30 (20 done, 0 failed), running",
        lines[3],
    ]
    assert lines[3].startswith("w: 30/30 (30 done, 0 failed), finished at ")


def test_watching_an_unknown_run_is_one_line(table: TokenStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--prefix", PREFIX, "runs", "watch", "nope"]) == 2
    assert "no run named 'nope'" in capsys.readouterr().err


def test_plan_learns_the_mean_job_time_from_the_newest_run(
    sqs: Any, table: TokenStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = make_queue(sqs, "learned")
    config = tmp_path / "queues.yml"
    config.write_text(f"queues:\n  work:\n    queue: {url}\n    handler: sample_handlers.dispatch\n")
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("\n".join(f"job {n}" for n in range(20)))
    plan = ["--prefix", PREFIX, "--config", str(config), "send", "work", str(jobs), "--plan", "--max-concurrency", "2"]
    assert main([*plan, "--dry-run"]) == 2
    assert "no run has measured 10 or more messages on work yet" in capsys.readouterr().err

    assert main(["--prefix", PREFIX, "--config", str(config), "send", "work", str(jobs), "--run", "first"]) == 0
    sample_handlers.use(lambda event, _: time.sleep(0.1))  # a batch of up to 10 takes 0.1 s: 10 ms a message
    run_loop(sqs, table, url, book())
    capsys.readouterr()

    assert main([*plan, "--dry-run"]) == 0
    out = capsys.readouterr().out
    learned = re.search(r"mean job time ([0-9.e-]+) s: measured by the loops of work on 20 messages of run first", out)
    assert learned is not None, out
    assert 0.009 <= float(learned.group(1)) < 0.1
    assert "plan: 20 jobs of" in out
