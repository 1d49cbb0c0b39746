"""Queue depths read by the control plane itself, many queues at once (docs/scaling.md#two-paths).

CloudWatch's SQS metrics come once a minute, late, and not at all for a queue idle for six hours (they
resume up to 15 minutes after it is active again). A GetQueueAttributes call answers now, and touching
the queue every minute keeps it active, so its metrics and alarms keep reporting too."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from poller.aws.clients import control_client
from poller.sqs.depth import DEPTH_ATTRIBUTES, depth_of

READ_WORKERS = 32
"""Depth reads (and per-queue reconciles) in flight at once in restart: at ~15 ms a call, 1,000 queues'
reads take about half a second, well inside restart's 50 s timeout (docs/benchmarks.md)."""

T = TypeVar("T")


def depth_client(region: str) -> Any:
    """The control plane's SQS client (2 s connect, 5 s read, 3 attempts: a read that still fails is
    retried by the next minute's restart), with a connection per worker."""
    return control_client("sqs", region, pool=READ_WORKERS)


class QueueDepths:
    """Reads visible + in-flight counts on a boto3 SQS client (thread-safe: one client serves every worker)."""

    def __init__(self, sqs: Any):
        self.sqs = sqs

    def depth(self, queue_url: str) -> int:
        answer = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(DEPTH_ATTRIBUTES))
        return depth_of(answer.get("Attributes", {}))


def in_parallel(calls: Iterable[Callable[[], T]], *, workers: int = READ_WORKERS) -> list[T]:
    """Run ``calls`` on up to ``workers`` threads; results in the order given. A call should catch what
    it can handle: the first exception left is raised after every call has finished."""
    tasks = list(calls)
    if len(tasks) <= 1:
        return [task() for task in tasks]
    with ThreadPoolExecutor(max_workers=min(workers, len(tasks)), thread_name_prefix="restart") as pool:
        futures = [pool.submit(task) for task in tasks]
        return [future.result() for future in futures]
