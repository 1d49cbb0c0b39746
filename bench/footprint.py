"""Cold import time of the loop function's module, and the peak memory of one invocation that handles
1,000 messages, each in a fresh interpreter.

The cold start as Lambda sees it (:func:`packaged_cold_start`): the deployment package unzipped into a
folder of its own, imported from there as from ``/var/task`` (first on the path, no site-packages), the
runtime's boto3 and botocore beside it, and no bytecode written (Lambda's code directory is read-only):
``python -m bench.footprint --package .serverless/sqs-loops.zip --python .venv312/bin/python``."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from bench import aws
from bench.harness import create_table
from sandbox import loopback
from sandbox.containers import LAMBDA_PROVIDED

ROOT = Path(__file__).resolve().parents[1]
IMPORTING = "import time; t = time.perf_counter(); import {}; print((time.perf_counter() - t) * 1000)"
IMPORT_PROBE = IMPORTING.format("poller.handler")
FLOOR_PROBE = IMPORTING.format("botocore.session, botocore.client, botocore.config, pynamodb.models")
"""What the claim needs before any of our code: botocore's session, client and config (from the runtime) and
PynamoDB's model (from the package): the floor under the cold import, measured by turns with it."""
FIRST_CLAIM_PROBE = """
import json, sys, time
started = time.perf_counter()
import poller.handler
imported = time.perf_counter()

class Context:
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:sqs-loops-bench-poller"

    def get_remaining_time_in_millis(self):
        return 900000

outcome = poller.handler.handler(json.loads(sys.argv[1]), Context())
ended = time.perf_counter()
print(json.dumps({"import_ms": (imported - started) * 1000, "first_claim_ms": (ended - started) * 1000,
                  "reason": outcome["reason"], "yaml_imported": "yaml" in sys.modules}))
"""
"""Imports the entry point, then runs one step whose claim the table refuses (no such row): the import,
the config, the clients and one conditional write answered, the first thing every cold step does."""

PACKAGE_FORMS = {
    "shipped": lambda name: True,
    "no_config_form": lambda name: not name.endswith(".yml.json"),
    "no_bytecode": lambda name: "__pycache__/" not in name and not name.endswith(".yml.json"),
}
"""The package as built, without the config's JSON form, and without bytecode either (as it shipped
before deploy/artifact.py)."""

FEED_BELOW = 100
"""The feeder keeps the queue at about this many messages (moto walks the whole queue on every receive)."""


def import_ms(python: str, runs: int) -> dict[str, Any]:
    """Median of ``runs`` cold imports of ``poller.handler`` by ``python`` (bytecode cached, as in a
    deployment package that ships it or after the first run of a container image)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [python, "-c", IMPORT_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        times.append(float(out.stdout))
    version = subprocess.run([python, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    return {"import_ms": round(statistics.median(times), 1), "runs": [round(t, 1) for t in times], "python": version}


def packaged_cold_start(
    zip_path: Path, python: str, runs: int, *, queue_url: str | None = None, config: str = "queues.yml"
) -> dict[str, Any]:
    """Cold import of ``poller.handler`` from the unzipped package, in each of :data:`PACKAGE_FORMS`, run
    by turns (``runs`` each; medians), and the floor (:data:`FLOOR_PROBE`, from the shipped folder) by turns
    with them, with ``ours_ms`` the median of each turn's shipped import less its floor; with ``queue_url``
    (one of the package's queues, on the moto server :func:`bench.aws.moto_server` set up, its table made),
    the import and the first claim together; ``config``: the config file's path in the zip."""
    python = os.path.abspath(shutil.which(python) or python)  # run from the task folder: not relative
    with tempfile.TemporaryDirectory() as folder:
        runtime = _runtime_stand_in(python, Path(folder, "runtime"))
        tasks = {form: _unpack(zip_path, Path(folder, form), keep) for form, keep in PACKAGE_FORMS.items()}
        samples: dict[str, dict[str, list[float]]] = {form: {} for form in tasks}
        for _ in range(runs):
            for form, task in tasks.items():
                for key, value in _cold_start(python, task, runtime, queue_url, config).items():
                    samples[form].setdefault(key, []).append(value)
            if queue_url is None:
                floor = _cold_start(python, tasks["shipped"], runtime, None, config, probe=FLOOR_PROBE)
                samples.setdefault("runtime_floor", {}).setdefault("import_ms", []).append(floor["import_ms"])
    version = subprocess.run([python, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    result: dict[str, Any] = {"python": version, "package": str(zip_path), "runs": runs}
    for form, figures in samples.items():
        result[form] = {f"{key}": round(statistics.median(values), 1) for key, values in figures.items()}
        result[form]["spread"] = {key: [round(min(v), 1), round(max(v), 1)] for key, v in figures.items()}
    if "runtime_floor" in samples:
        ours = [
            a - b for a, b in zip(samples["shipped"]["import_ms"], samples["runtime_floor"]["import_ms"], strict=True)
        ]
        result["ours_ms"] = {
            "median": round(statistics.median(ours), 1),
            "spread": [round(min(ours), 1), round(max(ours), 1)],
        }
    return result


def _cold_start(
    python: str, task: Path, runtime: Path, queue_url: str | None, config: str, *, probe: str = IMPORT_PROBE
) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    # The task folder first, as /var/task is in Lambda, then the runtime's libraries; no bytecode written.
    env |= {"PYTHONPATH": f"{task}{os.pathsep}{runtime}", "PYTHONDONTWRITEBYTECODE": "1"}
    if queue_url is None:
        out = subprocess.run([python, "-S", "-c", probe], cwd=task, env=env, capture_output=True, text=True, check=True)
        return {"import_ms": float(out.stdout)}
    env |= {"SQS_LOOPS_CONFIG": config, "AWS_REGION": "us-east-1", "POLLER_FUNCTION": "sqs-loops-bench-poller"}
    event = {"queue_url": queue_url, "token": "no-such-token", "loop_id": "loop-cold", "generation": 0}
    out = subprocess.run(
        [python, "-S", "-c", FIRST_CLAIM_PROBE, json.dumps(event)],
        cwd=task,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    if figures["reason"] != "deleted":
        raise RuntimeError(f"the cold step did not end at its claim: {figures}")
    return {"import_ms": figures["import_ms"], "first_claim_ms": figures["first_claim_ms"]}


def _unpack(zip_path: Path, task: Path, keep: Any) -> Path:
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(task, members=[name for name in archive.namelist() if keep(name)])
    return task


def _runtime_stand_in(python: str, folder: Path) -> Path:
    """A folder of links to ``python``'s own copies of what the runtime provides, and nothing else."""
    purelib = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    cache_tag = subprocess.run(
        [python, "-c", "import sys; print(sys.implementation.cache_tag)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    (folder / "__pycache__").mkdir(parents=True)
    for name in LAMBDA_PROVIDED:  # with their bytecode: taken from the measuring Python's site-packages
        if (purelib / name).is_dir():
            (folder / name).symlink_to(purelib / name)
        else:  # a module of one file (six): its bytecode sits in site-packages' own __pycache__
            (folder / f"{name}.py").symlink_to(purelib / f"{name}.py")
            pyc = purelib / "__pycache__" / f"{name}.{cache_tag}.pyc"
            if pyc.exists():
                (folder / "__pycache__" / pyc.name).symlink_to(pyc)
    return folder


def _accept_invoke(request: BaseHTTPRequestHandler) -> None:
    """Lambda's async Invoke, as the caller sees it: 202 and nothing more (the step is not run)."""
    length = int(request.headers.get("Content-Length") or 0)
    request.rfile.read(length)
    request.send_response(202)
    request.send_header("Content-Length", "0")
    request.end_headers()


def rss_mb(messages: int, python: str = sys.executable) -> dict[str, Any]:
    """Peak resident memory of a fresh interpreter (``python``: the Lambda runtime's 3.12, say) running one
    loop step over ``messages`` messages, with the moto server in another process: what Lambda reports as
    its Max Memory Used (the runtime's client runs in the function's process)."""
    sqs = aws.sqs_client()
    url = aws.create_queue(sqs, "rss")
    store = create_table()
    store.create(url, "slot-1", loop_id="loop-rss", now_ms=0)
    lambda_api, lambda_url = loopback.serve(_accept_invoke, name="bench-lambda")
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder, "queues.yml")
        config.write_text(f"queues:\n  bench:\n    queue: {url}\n    handler: bench.handlers.noop\n")
        env = {**os.environ, "SQS_LOOPS_CONFIG": str(config), "AWS_ENDPOINT_URL_LAMBDA": lambda_url}
        env["POLLER_FUNCTION"] = "sqs-loops-bench-poller"
        event = {"queue_url": url, "token": "slot-1", "loop_id": "loop-rss", "generation": 0}
        done = threading.Event()
        feeder = threading.Thread(target=_feed, args=(url, messages, done), daemon=True)
        feeder.start()
        try:
            out = subprocess.run(
                [python, "-m", "bench.invocation", json.dumps(event), str(messages)],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
        finally:
            done.set()
            feeder.join(timeout=10)
            loopback.stop(lambda_api)
    if out.returncode != 0:
        raise RuntimeError(f"the invocation failed: {out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    outcome = result["outcome"]
    if outcome["succeeded"] < messages or not outcome["recursed"]:
        raise RuntimeError(f"the invocation did not handle {messages} messages and recurse: {outcome}")
    return {
        "rss_mb": round(result["ru_maxrss_kb"] / 1024, 1),
        "messages": outcome["succeeded"],
        "batches": outcome["batches"],
        "seconds": round(result["seconds"], 1),
        "python": subprocess.run([python, "--version"], capture_output=True, text=True, check=True).stdout.split()[-1],
        "top_allocations": result.get("top_allocations"),
    }


def _feed(url: str, total: int, done: threading.Event) -> None:
    sqs = aws.sqs_client()
    sent = 0
    while not done.is_set():
        if sent < total + 100 and aws.depth(sqs, url) < FEED_BELOW:
            aws.fill(sqs, url, 50, prefix=f"r{sent}-")
            sent += 50
        else:
            done.wait(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.footprint", description=packaged_cold_start.__doc__)
    parser.add_argument("--package", type=Path, required=True, help="the zip `serverless package` made")
    parser.add_argument("--python", default=sys.executable, help="a Python of the runtime's version (3.12)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    from poller.config import config_path, parse_config

    config = str(config_path())  # as serverless.yml ships it: $SQS_LOOPS_CONFIG, else queues.yml
    with zipfile.ZipFile(args.package) as archive:
        queue = next(iter(parse_config(archive.read(config).decode("utf-8")).queues.values()))
    url = queue.queue if queue.queue_url_given else f"https://sqs.us-east-1.amazonaws.com/123456789012/{queue.queue}"
    from bench.harness import create_table

    print(f"import alone, {args.runs} runs per form ...", flush=True)
    result = {"import": packaged_cold_start(args.package, args.python, args.runs, config=config)}
    with aws.moto_server():
        create_table()
        print(f"import and first claim, {args.runs} runs per form ...", flush=True)
        result["first_claim"] = packaged_cold_start(args.package, args.python, args.runs, queue_url=url, config=config)
    print(f"{result['import']['python']}, {args.package}, medians of {args.runs} [min, max], ms:")
    for phase, figures in result.items():
        for form in (form for form in [*PACKAGE_FORMS, "runtime_floor"] if form in figures):
            cells = [
                f"{key} {value} {figures[form]['spread'][key]}"
                for key, value in figures[form].items()
                if key != "spread"
            ]
            print(f"  {phase:12} {form:15} " + "  ".join(cells))
    ours = result["import"]["ours_ms"]
    print(f"  ours: the shipped import less the runtime floor, turn by turn: {ours['median']} {ours['spread']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
