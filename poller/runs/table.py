"""Runs in the token table: one row per run in a partition of its own (hash key ``#runs``, range key the
run's name), beside the loops' rows as DESIGN.md allows. Token queries never read that partition, and
table scans for loops skip it (its rows have no ``loop_id``).

A run's row::

    total      N   messages sent into the run (grown before each send, taken back for what SQS refused)
    done       N   messages handled successfully, each once
    failed     N   messages that will not be retried (their last allowed receive failed: SQS moves them to
                   the dead-letter queue)
    started_at N   epoch ms;  finished_at N: epoch ms, set once by the write that claims the notice
    notified_at N  epoch ms the notice was published (absent: not yet, or its publish failed)
    pending_0, pending_1  SS  item ids counted ``done`` whose delete is not yet known to have succeeded
                   (two, so that one update can add to one and forget from the other: DynamoDB refuses
                   ADD and DELETE on one attribute in one update)
    failed_ids SS  item ids counted ``failed`` (so that a redriven dead letter is recognised)
    job_ms:<queue key>, jobs:<queue key>  N  time the loops of that queue spent per run message, summed,
                   and the messages it covers: what ``sqs-loops send --plan`` learns a mean job time from
    sends      SS  ids of the sends under way (grown, not yet settled): a retried grow or settle finds its
                   own id and counts nothing twice

Written with the low-level DynamoDB client (created by the caller when first needed): set operations,
conditions per item id and the old item on a failed condition are what this needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from poller.aws.errors import is_condition_failure
from poller.runs.exceptions import RunExists, RunFinished, UnknownRun

RUNS_PARTITION = "#runs"
PENDING = ("pending_0", "pending_1")
FAILED_IDS = "failed_ids"
SENDS = "sends"
JOB_MS, JOBS = "job_ms:", "jobs:"
"""Prefixes of the per-queue timing figures (``job_ms:<queue key>``, ``jobs:<queue key>``): milliseconds of
handling and messages handled, added by the count writes, read by ``send --plan`` (docs/runs.md)."""


@dataclass(frozen=True)
class RunStatus:
    """A run as read. Times are epoch milliseconds."""

    run: str
    total: int
    done: int
    failed: int
    started_at: int | None
    finished_at: int | None
    notified_at: int | None = None
    pending: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())
    failed_ids: frozenset[str] = field(default_factory=frozenset)
    sends: frozenset[str] = field(default_factory=frozenset)
    jobs: dict[str, tuple[int, int]] = field(default_factory=dict)  # queue key -> (job ms summed, jobs)

    def mean_job_s(self, queue_key: str) -> tuple[float, int] | None:
        """(mean seconds per message, messages measured) that the loops of ``queue_key`` recorded, or None."""
        ms, count = self.jobs.get(queue_key, (0, 0))
        return (ms / count / 1000, count) if count else None

    @property
    def state(self) -> str:
        """``finished`` once the notice is claimed (``done + failed == total``), else ``running``."""
        return "finished" if self.finished_at is not None else "running"

    @property
    def complete(self) -> bool:
        """Every message sent is counted: the run is finished, or is about to be claimed so."""
        return self.total > 0 and self.done + self.failed >= self.total

    def as_dict(self) -> dict[str, Any]:
        """What ``sqs-loops runs --json`` prints and the library's status gives."""
        return {
            "run": self.run,
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "state": self.state,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "notified_at": self.notified_at,
        }

    @classmethod
    def of_item(cls, item: dict[str, Any]) -> RunStatus:
        def number(name: str) -> int | None:
            return int(item[name]["N"]) if name in item else None

        def strings(name: str) -> frozenset[str]:
            return frozenset(item[name]["SS"]) if name in item else frozenset()

        return cls(
            run=item["token"]["S"],
            total=number("total") or 0,
            done=number("done") or 0,
            failed=number("failed") or 0,
            started_at=number("started_at"),
            finished_at=number("finished_at"),
            notified_at=number("notified_at"),
            pending=(strings(PENDING[0]), strings(PENDING[1])),
            failed_ids=strings(FAILED_IDS),
            sends=strings(SENDS),
            jobs={
                name.removeprefix(JOBS): (number(JOB_MS + name.removeprefix(JOBS)) or 0, number(name) or 0)
                for name in item
                if name.startswith(JOBS)
            },
        )


def _key(run: str) -> dict[str, Any]:
    return {"queue_url": {"S": RUNS_PARTITION}, "token": {"S": run}}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


@dataclass(frozen=True)
class CountWrite:
    """One counting update of a run (docs/runs.md#counting): ``add_pending`` item ids counted done go into
    ``PENDING[parity]``; ``forget`` leave ``PENDING[1 - parity]``; ``new_failed`` are counted failed;
    ``recovered`` (redriven dead letters that succeeded) move from failed to done. The condition checks,
    for every id counted, the state the counts assume, so a retried or duplicate write counts nothing twice."""

    run: str
    parity: int
    add_pending: frozenset[str] = frozenset()
    new_failed: frozenset[str] = frozenset()
    recovered: frozenset[str] = frozenset()
    forget: frozenset[str] = frozenset()
    timing: tuple[str, int, int] | None = None  # (queue key, job ms, jobs) to add to the queue's figures

    def __post_init__(self) -> None:
        if self.new_failed and self.recovered:  # DynamoDB refuses ADD and DELETE on failed_ids in one update
            raise ValueError("new_failed and recovered cannot share one write")

    def request(self) -> dict[str, Any]:
        names = {"#t": "total", "#d": "done", "#f": "failed", "#p": PENDING[self.parity]}
        names |= {"#o": PENDING[1 - self.parity], "#F": FAILED_IDS}
        values: dict[str, Any] = {}
        adds, deletes = [], []
        done = len(self.add_pending)
        if done:
            adds += ["#d :done", "#p :pending"]
            values |= {":done": _n(done), ":pending": {"SS": sorted(self.add_pending)}}
        if self.recovered:
            values[":done"] = _n(done)  # add_pending holds the recovered ids too
            adds.append("#f :recovered")
            values[":recovered"] = _n(-len(self.recovered))
            deletes.append("#F :rec_ids")
            values[":rec_ids"] = {"SS": sorted(self.recovered)}
        if self.new_failed:
            adds += ["#f :failed", "#F :failed_ids"]
            values |= {":failed": _n(len(self.new_failed)), ":failed_ids": {"SS": sorted(self.new_failed)}}
        if self.timing is not None and self.timing[2] > 0:
            key, ms, jobs = self.timing
            names |= {"#jm": JOB_MS + key, "#jn": JOBS + key}
            adds += ["#jm :jm", "#jn :jn"]
            values |= {":jm": _n(ms), ":jn": _n(jobs)}
        if self.forget:
            deletes.append("#o :forget")
            values[":forget"] = {"SS": sorted(self.forget)}
        conditions = ["attribute_exists(#t)"]
        for index, item in enumerate(sorted((self.add_pending - self.recovered) | self.new_failed)):
            values[f":i{index}"] = {"S": item}
            conditions.append(
                f"NOT contains(#p, :i{index}) AND NOT contains(#o, :i{index}) AND NOT contains(#F, :i{index})"
            )
        for index, item in enumerate(sorted(self.recovered)):
            values[f":r{index}"] = {"S": item}
            conditions.append(f"contains(#F, :r{index})")
        expression = " ".join(
            part
            for part in (f"ADD {', '.join(adds)}" if adds else "", f"DELETE {', '.join(deletes)}" if deletes else "")
            if part
        )
        used = {name for name in names if name in expression or name in " ".join(conditions)}
        return {
            "Key": _key(self.run),
            "UpdateExpression": expression,
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": {k: v for k, v in names.items() if k in used},
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }


class RunTable:
    """The runs partition of one token table, through a low-level DynamoDB ``client``."""

    def __init__(self, client: Any, table_name: str):
        self.client = client
        self.table = table_name

    def create(self, run: str, *, now_ms: int, exist_ok: bool = False) -> RunStatus:
        """A new run with nothing sent yet; with ``exist_ok`` an existing unfinished run is returned instead."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item={**_key(run), "total": _n(0), "done": _n(0), "failed": _n(0), "started_at": _n(now_ms)},
                ConditionExpression="attribute_not_exists(#k)",
                ExpressionAttributeNames={"#k": "token"},
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise
            existing = self.get(run)
            if not exist_ok or existing is None:
                raise RunExists(f"run {run!r} exists already (started at {existing and existing.started_at})") from exc
            if existing.finished_at is not None:
                raise RunFinished(f"run {run!r} finished already; start a new run") from exc
            return existing
        return RunStatus(run, 0, 0, 0, now_ms, None)

    def grow(self, run: str, count: int, *, send_id: str) -> RunStatus:
        """Add ``count`` to the run's total before a send of that many messages, and note ``send_id`` among
        the sends under way. Needs a run that exists and has not finished. Idempotent: a retried request whose
        first try landed finds its send id noted and changes nothing."""
        try:
            answer = self.client.update_item(
                TableName=self.table,
                Key=_key(run),
                UpdateExpression="ADD #t :n, #s :ids",
                ConditionExpression="attribute_exists(#t) AND attribute_not_exists(finished_at) AND NOT contains(#s, :id)",
                ExpressionAttributeNames={"#t": "total", "#s": SENDS},
                ExpressionAttributeValues={":n": _n(count), ":ids": {"SS": [send_id]}, ":id": {"S": send_id}},
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise
            old = getattr(exc, "response", {}).get("Item")
            if not old:
                raise UnknownRun(f"run {run!r} was never started: start it first (producer.start_run)") from exc
            if send_id in old.get(SENDS, {}).get("SS", []):
                return RunStatus.of_item(old)  # our own retried request: it landed the first time
            raise RunFinished(f"run {run!r} finished already; its notice is out: start a new run") from exc
        return RunStatus.of_item(answer["Attributes"])

    def settle(self, run: str, send_id: str, *, unsent: int) -> RunStatus | None:
        """End send ``send_id``: take ``unsent`` (refused by SQS, or never sent) back from the total and drop
        the send from those under way. The run after it, or None if this send was settled already (a retried
        request)."""
        try:
            answer = self.client.update_item(
                TableName=self.table,
                Key=_key(run),
                UpdateExpression="ADD #t :n DELETE #s :ids",
                ConditionExpression="contains(#s, :id)",
                ExpressionAttributeNames={"#t": "total", "#s": SENDS},
                ExpressionAttributeValues={":n": _n(-unsent), ":ids": {"SS": [send_id]}, ":id": {"S": send_id}},
                ReturnValues="ALL_NEW",
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return None
            raise
        return RunStatus.of_item(answer["Attributes"])

    def count(self, write: CountWrite) -> tuple[bool, RunStatus | None]:
        """Apply a counting write: (True, the run after it), or (False, the run as it was) when its condition
        failed (the run then is None if it does not exist)."""
        try:
            answer = self.client.update_item(TableName=self.table, **write.request())
        except Exception as exc:
            if not is_condition_failure(exc):
                raise
            old = getattr(exc, "response", {}).get("Item")
            return False, RunStatus.of_item(old) if old else None
        return True, RunStatus.of_item(answer["Attributes"])

    def forget(self, run: str, by_attribute: dict[int, frozenset[str]]) -> None:
        """Take item ids out of the pending sets (idempotent: deleting what is gone changes nothing)."""
        parts, names, values = [], {}, {}
        for parity, items in sorted(by_attribute.items()):
            if items:
                parts.append(f"#p{parity} :p{parity}")
                names[f"#p{parity}"] = PENDING[parity]
                values[f":p{parity}"] = {"SS": sorted(items)}
        if not parts:
            return
        try:
            self.client.update_item(
                TableName=self.table,
                Key=_key(run),
                UpdateExpression="DELETE " + ", ".join(parts),
                ConditionExpression="attribute_exists(#t)",
                ExpressionAttributeNames={**names, "#t": "total"},
                ExpressionAttributeValues=values,
            )
        except Exception as exc:
            if not is_condition_failure(exc):  # the run's row is gone: nothing to forget
                raise

    def claim_finish(self, seen: RunStatus, *, now_ms: int) -> RunStatus | None:
        """Mark the run finished, once: only if no one did and its total is still the one ``seen`` (a send
        that grew it since means it is not finished). The run as finished, or None if the claim lost."""
        try:
            answer = self.client.update_item(
                TableName=self.table,
                Key=_key(seen.run),
                UpdateExpression="SET finished_at = :now",
                ConditionExpression="attribute_not_exists(finished_at) AND #t = :t",
                ExpressionAttributeNames={"#t": "total"},
                ExpressionAttributeValues={":now": _n(now_ms), ":t": _n(seen.total)},
                ReturnValues="ALL_NEW",
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return None
            raise
        return RunStatus.of_item(answer["Attributes"])

    def mark_notified(self, run: str, *, now_ms: int) -> bool:
        """Note that the notice went out; False if someone noted it already."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=_key(run),
                UpdateExpression="SET notified_at = :now",
                ConditionExpression="attribute_exists(finished_at) AND attribute_not_exists(notified_at)",
                ExpressionAttributeValues={":now": _n(now_ms)},
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def get(self, run: str) -> RunStatus | None:
        item = self.client.get_item(TableName=self.table, Key=_key(run), ConsistentRead=True).get("Item")
        return RunStatus.of_item(item) if item else None

    def runs(self, *, unannounced: bool = False) -> Iterator[RunStatus]:
        """Every run, read consistently, following pages; ``unannounced``: only those finished whose notice
        is not marked published, read eventually consistently (restart's minute look: half the read units,
        and a claim it misses by a second is caught a minute later)."""
        start: dict[str, Any] | None = None
        only: dict[str, Any] = {}
        if unannounced:
            only = {"FilterExpression": "attribute_exists(finished_at) AND attribute_not_exists(notified_at)"}
        while True:
            page = self.client.query(
                TableName=self.table,
                KeyConditionExpression="queue_url = :p",
                ExpressionAttributeValues={":p": {"S": RUNS_PARTITION}},
                ConsistentRead=not unannounced,
                **only,
                **({"ExclusiveStartKey": start} if start else {}),
            )
            yield from (RunStatus.of_item(item) for item in page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if not start:
                return
