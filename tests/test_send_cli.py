"""`sqs-loops send QUEUE FILE` through the CLI's main, against moto in-process."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import count, make_queue
from test_producer import delayed, drain

from ops.cli import main
from ops.console import Bar, console
from ops.send import read_messages


@pytest.fixture(autouse=True)
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Away from the repository's queues.yml: a queue name is looked up as a name, not a key."""
    monkeypatch.chdir(tmp_path)


def test_send_a_file_by_queue_name_with_a_plan(sqs: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = make_queue(sqs, "jobs")
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("".join(f"job-{i}\n" for i in range(30)) + "\n")  # a blank line is no message
    code = main(["send", "jobs", str(jobs), "--plan", "--mean-job-s", "1", "--max-concurrency", "10"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "window 3 s (even spread), 10 jobs/s arrive, expected peak concurrency 10.0" in out
    assert f"sent 30 of 30 messages to {url} in 3 batches" in out
    assert err.strip() == "send 30/30, 0 failed"  # not a terminal: one plain final line
    assert count(sqs, url)[0] + delayed(sqs, url) == 30


def test_send_a_json_array_to_a_config_key(sqs: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = make_queue(sqs, "orders-prod")
    config = tmp_path / "queues.yml"
    config.write_text("queues:\n  orders:\n    queue: orders-prod\n    handler: app.orders.handle\n")
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps(["plain text", {"order": 7}, [1, 2]]))
    code = main(["--config", str(config), "send", "orders", str(jobs), "--jitter", "0-0"])
    assert code == 0, capsys.readouterr().err
    assert sorted(m["Body"] for m in drain(sqs, url)) == sorted(["plain text", '{"order":7}', "[1,2]"])


def test_refused_messages_are_named_and_the_exit_code_says_so(
    sqs: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = sqs.create_queue(QueueName="jobs.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("a\nb\n")
    assert main(["send", url, str(jobs), "--plan", "--mean-job-s", "1", "--max-concurrency", "1"]) == 2
    assert "sqs-loops: error: " in capsys.readouterr().err
    assert main(["send", url, str(jobs), "--group-id", "g"]) == 0
    assert sorted(m["Body"] for m in drain(sqs, url)) == ["a", "b"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["send", "jobs", "FILE", "--plan", "--max-concurrency", "5"], "--plan needs --mean-job-s"),
        (["send", "jobs", "FILE", "--mean-job-s", "2"], "--mean-job-s: only with --plan"),
        (["send", "jobs", "FILE", "--jitter", "5-1000"], "jitter 5-1000: expected 0 <= low <= high <= 900"),
        (["send", "jobs", "FILE", "--format", "json"], "not valid JSON at line 1, column 1"),
    ],
)
def test_bad_input_is_one_line_before_any_aws_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("a\nb\n")
    assert main([str(jobs) if a == "FILE" else a for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sqs-loops: error: ") and message in err and err.count("\n") == 1


def test_an_unknown_queue_is_one_line(sqs: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("a\n")
    assert main(["send", "nope", str(jobs)]) == 2
    assert capsys.readouterr().err == (
        "sqs-loops: error: 'nope' is no queue key in queues.yml, and no queue named 'nope' exists in this account "
        "and region\n"
    )


def test_a_dry_run_prints_the_plan_and_sends_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("".join(f"{i}\n" for i in range(40_000)))
    args = ["send", "vendor", str(jobs), "--plan", "--mean-job-s", "0.5", "--max-concurrency", "25", "--dry-run"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "window 800 s (even spread), 50 jobs/s arrive, expected peak concurrency 25.0, finish after 800.5 s" in out
    assert "dry run: 40000 messages read" in out


def test_messages_are_lines_or_a_json_array(tmp_path: Path) -> None:
    lines = tmp_path / "lines.txt"
    lines.write_text('{"a": 1}\n\n{"b": 2}\n')  # one JSON object per line is lines, not an array
    assert read_messages(str(lines)) == ['{"a": 1}', '{"b": 2}']
    array = tmp_path / "array.json"
    array.write_text('[\n  "x",\n  {"b": 2}\n]\n')
    assert read_messages(str(array)) == ["x", '{"b":2}']
    assert read_messages(str(array), "lines") == ["[", '  "x",', '  {"b": 2}', "]"]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match=r"empty\.txt: no messages"):
        read_messages(str(empty))


def test_piped_the_bar_is_one_plain_final_line() -> None:
    screen = io.StringIO()  # not a terminal
    progress = Bar(console(screen), "send", 20)
    progress.update(10, 20, "0 failed")
    progress.update(20, 20, "1 failed")
    progress.close()
    assert screen.getvalue() == "send 20/20, 1 failed\n"


def test_on_a_terminal_the_bar_is_rich_and_redrawn_in_place() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    progress = Bar(console(screen), "send", 20)
    progress.update(20, 20, "1 failed")
    progress.close()
    drawn = screen.getvalue()
    assert "\x1b[" in drawn and "20/20" in drawn and "1 failed" in drawn  # escape codes: colour, redraw


def test_a_plan_for_a_config_key_counts_on_the_queues_rate_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "queues.yml"
    config.write_text(
        "queues:\n  vendor:\n    queue: vendor-calls\n    handler: app.orders.handle\n"
        "    max_loops: 4\n    rate_limit: 10\n"
    )
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("".join(f"job-{i}\n" for i in range(400)))
    plan = ["--plan", "--mean-job-s", "0.5", "--max-concurrency", "25", "--dry-run"]
    assert main(["--config", str(config), "send", "vendor", str(jobs), *plan]) == 0
    assert "the consumers (10 jobs/s) need 40 s" in capsys.readouterr().out
    assert main(["--config", str(config), "send", "vendor", str(jobs), *plan, "--consumer-rate", "50"]) == 0
    assert "need" not in capsys.readouterr().out  # a rate given on the command line wins
