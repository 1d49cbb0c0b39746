"""What an operator does to a deployment, on real AWS or a sandbox: status, pin/pause/resume, redrive."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, TextIO

import boto3
from botocore.exceptions import ClientError

from ops.console import bar, console
from poller.aws.errors import error_code
from poller.clock import SYSTEM_CLOCK, epoch_ms
from poller.config import Config, QueueConfig
from poller.downstream.state import DynamoSharedStore
from poller.lease.tokens import TokenStore, bind_token_table
from scaler.alarms.states import AlarmStates
from scaler.limit_cap import LimitCap, limit_cap
from scaler.overrides import OverrideStore, bind_override_table
from scaler.share import queue_share, read_lanes, shared_names
from scaler.wanted import wanted_loops


@dataclass
class Operator:
    config: Config
    prefix: str
    region: str
    endpoint_url: str | None = None
    table: str | None = None

    def __post_init__(self) -> None:
        if self.endpoint_url:
            os.environ["AWS_ENDPOINT_URL"] = self.endpoint_url  # pynamodb and boto3 alike
            # A stand-in accepts any credentials; do not make the operator invent some.
            os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        kwargs: dict[str, Any] = {"region_name": self.region}
        self.sqs = boto3.client("sqs", **kwargs)
        self.cloudwatch = boto3.client("cloudwatch", **kwargs)
        self.account: str = boto3.client("sts", **kwargs).get_caller_identity()["Account"]
        table = self.table or f"{self.prefix}-tokens"
        self.tokens = TokenStore(bind_token_table(table, region=self.region))
        self.overrides = OverrideStore(bind_override_table(table, region=self.region))
        self.alarms = AlarmStates(self.cloudwatch, self.prefix)
        self.shares = DynamoSharedStore(boto3.client("dynamodb", **kwargs), table)  # shared downstreams' rows

    def url(self, queue: QueueConfig) -> str:
        return queue.queue_url(region=self.region, account_id=self.account)

    def dlq_url(self, queue: QueueConfig) -> str | None:
        return queue.dlq_url(region=self.region, account_id=self.account)

    def _depth(self, url: str) -> tuple[int, int]:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def _says(self, cap: LimitCap) -> str:
        """What status prints of a queue's cap; with ``poller.limit_cap: false`` it is measured, not applied."""
        return cap.describe() if self.config.poller.limit_cap else f"{cap.describe()} (not applied: poller.limit_cap)"

    def status(self) -> dict[str, Any]:
        now = epoch_ms(SYSTEM_CLOCK)
        pinned = self.overrides.pinned()
        lanes = read_lanes(self.shares, shared_names(self.config))  # a queue's share, as the scalers see it
        result: dict[str, Any] = {}
        for key, queue in self.config.queues.items():
            states = self.alarms.of_queue(queue)
            visible, in_flight = self._depth(self.url(queue))
            dlq = self.dlq_url(queue)
            rows = list(self.tokens.tokens_of(self.url(queue)))
            live = [r for r in rows if not r.retiring]
            share = queue_share(queue, lanes, now_ms=now)
            cap = limit_cap(queue, rows, now_ms=now, fresh_s=self.config.stale_after_s, share=share)
            result[key] = {
                "queue_url": self.url(queue),
                "visible": visible,
                "in_flight": in_flight,
                "dlq": self._depth(dlq)[0] if dlq else None,
                "wanted_loops": wanted_loops(queue, states, pinned.get(key)),
                "live_loops": len(live),
                "retiring_loops": len(rows) - len(live),
                "heartbeat_ages_s": {
                    r.token: None if r.last_used is None else round((now - r.last_used) / 1000, 1) for r in live
                },
                "errors": {r.token: r.last_error for r in rows if r.last_error},
                "alarms": {f"depth-{n}": states.get(n, "?") for n in range(1, len(queue.scale_steps) + 1)},
                "override": pinned.get(key),
                # The rate limit's cap from the loops' paces (docs/scaling.md#limit-cap); None: no cap.
                "limited": None if cap is None else {**cap.fields(), "says": self._says(cap)},
            }
        return result

    def pin(self, key: str, loops: int, note: str | None = None) -> None:
        self.overrides.pin(self.config.queue(key), loops, now_ms=epoch_ms(SYSTEM_CLOCK), note=note)

    def resume(self, key: str) -> None:
        self.config.queue(key)  # an unknown key fails here, with its name
        self.overrides.clear(key)

    def redrive(self, key: str, *, out: TextIO = sys.stderr) -> str:
        """Move the queue's DLQ back to it: StartMessageMoveTask where the service has it, else receive,
        send and delete in batches, with a progress bar. Returns how it was done."""
        queue = self.config.queue(key)
        dlq = self.dlq_url(queue)
        if dlq is None:
            raise ValueError(f"queue {key!r} has no dead-letter queue in the config (create: true or dlq: ...)")
        arn = self._arn(dlq)
        try:
            task = self.sqs.start_message_move_task(SourceArn=arn, DestinationArn=self._arn(self.url(queue)))
            return f"message move task started: {task.get('TaskHandle', '')}"
        except (ClientError, NotImplementedError) as exc:  # NotImplementedError: moto in-process
            if isinstance(exc, ClientError) and not _unsupported(exc):
                raise  # a task already running, access denied, ...: say so, move nothing
            why = error_code(exc) if isinstance(exc, ClientError) else "not implemented"
            print(f"StartMessageMoveTask not available here ({why}); moving by hand", file=out)
        moved, failed = self._move(dlq, self.url(queue), out)
        if failed:
            raise RedriveIncomplete(f"moved {moved} messages; {failed} could not be sent and stay in the DLQ")
        return f"moved {moved} messages by hand"

    def _arn(self, url: str) -> str:
        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
        return str(attrs["QueueArn"])

    def _move(self, source: str, target: str, out: TextIO) -> tuple[int, int]:
        """Receive, send, delete, 10 at a time; returns (moved, failed to send). A message leaves the DLQ
        only once it reached the target; one that could not be sent is left to become visible again."""
        total = max(1, self._depth(source)[0])
        fifo = target.endswith(".fifo")
        moved = failed = empty = 0
        with bar(console(out), "redrive", total) as progress:
            while empty < 2:  # two empty receives in a row: the DLQ is drained (SQS may answer empty once)
                got = self._move_some(source, target, fifo)
                if got is None:
                    empty += 1
                    continue
                empty = 0
                moved += got[0]
                failed += got[1]
                progress.update(moved, total, f"{failed} not sent" if failed else "")
        return moved, failed

    def _move_some(self, source: str, target: str, fifo: bool) -> tuple[int, int] | None:
        """One receive's worth: (moved, failed to send), or None when the receive came back empty."""
        messages = self.sqs.receive_message(
            QueueUrl=source,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            VisibilityTimeout=300,  # not back in the DLQ while this move runs: no double send
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["MessageGroupId"],
        ).get("Messages", [])
        if not messages:
            return None
        entries = [_send_entry(str(i), m, fifo) for i, m in enumerate(messages)]
        sent = self.sqs.send_message_batch(QueueUrl=target, Entries=entries)
        ok = {s["Id"] for s in sent.get("Successful", [])}
        done = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages) if str(i) in ok]
        if done:
            self.sqs.delete_message_batch(QueueUrl=source, Entries=done)
        return len(done), len(messages) - len(ok)


class RedriveIncomplete(Exception):
    """Some messages could not be moved; they stay in the dead-letter queue."""


def _unsupported(exc: ClientError) -> bool:
    """The service has no StartMessageMoveTask (moto answers 500; other stand-ins 404/501 or an unknown
    action), as opposed to a refusal of a real one."""
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return status in (404, 500, 501) or error_code(exc) in {"InvalidAction", "NotImplemented", "UnknownOperation"}


def _send_entry(entry_id: str, message: dict[str, Any], fifo: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"Id": entry_id, "MessageBody": message["Body"]}
    if message.get("MessageAttributes"):
        entry["MessageAttributes"] = message["MessageAttributes"]
    if fifo:  # keep the group's order; the original id makes a retried send a no-op
        entry["MessageGroupId"] = message.get("Attributes", {}).get("MessageGroupId", "redrive")
        entry["MessageDeduplicationId"] = message["MessageId"]
    return entry
