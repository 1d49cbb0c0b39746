"""Cold import time of the loop function's module, and the peak memory of one invocation that handles
1,000 messages, each in a fresh interpreter."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from bench import aws
from bench.harness import create_table
from sandbox import loopback

ROOT = Path(__file__).resolve().parents[1]
IMPORT_PROBE = "import time; t = time.perf_counter(); import poller.handler; print((time.perf_counter() - t) * 1000)"
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
