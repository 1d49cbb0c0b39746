"""The AWS stand-in the benchmarks run against: a moto server in its own process on loopback (so the
server's work never competes for the measured process's GIL), and the botocore-level call counter."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import requests

REGION = "us-east-1"
TABLE = "sqs-loops-bench-tokens"
ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "LOOPS_TABLE": TABLE,
}
START_TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server process on a free loopback port; yields its URL and sets this process's environment
    (``AWS_ENDPOINT_URL``, test credentials, ``LOOPS_TABLE``) to use it, restoring it afterwards."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    saved = {name: os.environ.get(name) for name in [*ENV, "AWS_ENDPOINT_URL", "AWS_PROFILE"]}
    try:
        _wait_until_up(url, process)
        os.environ.pop("AWS_PROFILE", None)
        os.environ.update(ENV, AWS_ENDPOINT_URL=url)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    end = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"the moto server exited at start with code {process.returncode}")
        try:
            requests.get(f"{url}/moto-api/", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"the moto server did not answer on {url} within {START_TIMEOUT_S:g} s")


def reset(url: str) -> None:
    """Empty the stand-in's account (between benchmarks)."""
    requests.post(f"{url}/moto-api/reset", timeout=10).raise_for_status()


def sqs_client() -> Any:
    return boto3.client("sqs", region_name=REGION)


class RoundTrip:
    """Adds ``ms`` of waiting to every call of the clients it is applied to (``before-send``), as the network
    to a region adds it: on loopback a call costs only the server's work, which hides what overlapping
    two calls (a delete with the next receive) gains on AWS. Sleeping costs the server nothing."""

    def __init__(self, ms: float):
        self.ms = ms
        self._clients: list[Any] = []

    def _wait(self, **_: Any) -> None:
        time.sleep(self.ms / 1000)

    def apply(self, *clients: Any) -> RoundTrip:
        for client in clients:
            client.meta.events.register("before-send", self._wait)
            self._clients.append(client)
        return self

    def remove(self) -> None:
        for client in self._clients:
            client.meta.events.unregister("before-send", self._wait)
        self._clients.clear()


class CallCounter:
    """Counts AWS API calls as botocore sends them (``before-call`` on each client it watches), so what is
    counted is what would be billed, whatever the code believes it does."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def watch(self, client: Any) -> Any:
        service = client.meta.service_model.service_name

        def on_call(model: Any, **_: Any) -> None:
            self.calls[f"{service}.{model.name}"] += 1

        client.meta.events.register("before-call", on_call)
        return client

    def add(self, name: str, n: int = 1) -> None:
        self.calls[name] += n

    def total(self) -> int:
        return sum(self.calls.values())

    def by_service(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for name, n in self.calls.items():
            out[name.split(".", 1)[0]] += n
        return dict(out)


def create_queue(sqs: Any, name: str, *, visibility_s: int = 30) -> str:
    url: str = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(visibility_s)})["QueueUrl"]
    return url


def fill(sqs: Any, url: str, count: int, *, prefix: str = "m") -> None:
    """Send ``count`` small messages, 10 a call."""
    for start in range(0, count, 10):
        n = min(10, count - start)
        entries = [{"Id": str(i), "MessageBody": f'{{"n": "{prefix}{start + i}"}}'} for i in range(n)]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def depth(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])
