"""A shared downstream's coordination state: one row in the token table (hash key ``#downstream:<name>``,
range key ``state``, no ``loop_id``, so the scaler's scans pass it by) holding a map of lanes, one a loop.

A refresh is one UpdateItem that writes the caller's lane and returns the whole row (everyone's lanes):
one call reads and writes. It is conditional on the lane being the caller's (same ``loop_id``) or free (absent
or expired), or its holder's being an earlier generation of the token (a crashed loop that restart revived)
whose views have all run out (not refreshed for SWITCH_S), or released (its loop retired: it makes no more
calls, and the token's next loop, a generation 1 again, goes on with it at once): two loops on one token
(one of them fenced, not yet aware) never spend a lane's slots at the same time. (Not an idle lane held by
another loop: a fenced loop would take its successor's so.)

    row: queue_url="#downstream:vendor", token="state",
         lanes={"orders#slot-1": {q, w, pr, d, p, sw, seen, lid, g, rel, t, tsw, ga}, ...}   (d, p, t: -1 for a backlog)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

from poller.aws.errors import error_code
from poller.downstream.shares import SWITCH_S, TTL_S, LaneRecord

STATE_TOKEN = "state"
DROP_AFTER_S = 3 * TTL_S
"""A lane expired this long is removed by the next refresh (it counts for nothing long before)."""


class LaneTaken(Exception):
    """Another loop holds this lane (the token was taken over): the caller has lost its lease."""


class SharedStore(Protocol):
    def refresh(self, downstream: str, lane: LaneRecord, *, drop: Sequence[str]) -> list[LaneRecord]:
        """Write ``lane`` (and remove the lanes named in ``drop``); return every lane of the row."""

    def read(self, downstream: str) -> list[LaneRecord]:
        """Every lane of the row (a consistent read; none if there is no row)."""


def state_key(downstream: str) -> str:
    return f"#downstream:{downstream}"


class DynamoSharedStore:
    """The state rows on the token table through a low-level DynamoDB client (injected)."""

    def __init__(self, client: Any, table: str):
        self.client = client
        self.table = table
        self.calls = 0  # requests made (tests and the outcome count them)

    def refresh(self, downstream: str, lane: LaneRecord, *, drop: Sequence[str]) -> list[LaneRecord]:
        try:
            return self._update(downstream, lane, drop)
        except Exception as exc:
            if error_code(exc) != "ValidationException":
                raise
        # The row has no lanes map yet (the first lane ever): make it, then write the lane.
        self._create(downstream)
        return self._update(downstream, lane, drop)

    def read(self, downstream: str) -> list[LaneRecord]:
        self.calls += 1
        item = self.client.get_item(TableName=self.table, Key=_key(downstream), ConsistentRead=True).get("Item", {})
        return [_decode(name, value["M"]) for name, value in item.get("lanes", {}).get("M", {}).items()]

    def _update(self, downstream: str, lane: LaneRecord, drop: Sequence[str]) -> list[LaneRecord]:
        names = {"#me": lane.lane}
        names.update({f"#d{n}": gone for n, gone in enumerate(drop) if gone != lane.lane})
        expression = "SET lanes.#me = :lane"
        removes = [f"lanes.{name}" for name in names if name != "#me"]
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        self.calls += 1
        try:
            answer = self.client.update_item(
                TableName=self.table,
                Key=_key(downstream),
                UpdateExpression=expression,
                ConditionExpression=(
                    "attribute_not_exists(lanes.#me) OR lanes.#me.lid = :lid OR lanes.#me.seen < :old"
                    " OR (lanes.#me.g < :gen AND lanes.#me.seen < :past) OR lanes.#me.rel = :yes"
                ),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={
                    ":lane": {"M": _encode(lane)},
                    ":lid": {"S": lane.loop_id},
                    ":old": {"N": str(lane.seen_ms - int(TTL_S * 1000))},
                    ":gen": {"N": str(lane.generation)},
                    ":past": {"N": str(lane.seen_ms - int(SWITCH_S * 1000))},
                    ":yes": {"BOOL": True},
                },
                ReturnValues="ALL_NEW",
            )
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise LaneTaken(f"lane {lane.lane} of {downstream} is held by another loop") from exc
            raise
        lanes = answer.get("Attributes", {}).get("lanes", {}).get("M", {})
        return [_decode(name, value["M"]) for name, value in lanes.items()]

    def _create(self, downstream: str) -> None:
        self.calls += 1
        try:
            self.client.put_item(
                TableName=self.table,
                Item={**_key(downstream), "lanes": {"M": {}}},
                ConditionExpression="attribute_not_exists(lanes)",
            )
        except Exception as exc:
            if error_code(exc) != "ConditionalCheckFailedException":  # someone else made it: as good
                raise


def _key(downstream: str) -> dict[str, Any]:
    return {"queue_url": {"S": state_key(downstream)}, "token": {"S": STATE_TOKEN}}


def _num(value: float) -> dict[str, str]:
    return {"N": "-1" if math.isinf(value) else repr(float(value))}


def _encode(lane: LaneRecord) -> dict[str, Any]:
    return {
        "q": {"S": lane.queue},
        "w": _num(lane.weight),
        "pr": {"N": str(lane.priority)},
        "d": _num(lane.demand),
        "p": _num(lane.prev),
        "sw": {"N": str(lane.switch_ms)},
        "seen": {"N": str(lane.seen_ms)},
        "lid": {"S": lane.loop_id},
        "g": {"N": str(lane.generation)},
        "rel": {"BOOL": lane.released},
        **({} if lane.then is None else {"t": _num(lane.then), "tsw": {"N": str(lane.then_ms)}}),
        **({} if lane.gives_after is None else {"ga": {"N": str(lane.gives_after)}}),
    }


def _decode(name: str, value: dict[str, Any]) -> LaneRecord:
    def num(key: str) -> float:
        n = float(value[key]["N"])
        return math.inf if n < 0 else n

    return LaneRecord(
        lane=name,
        queue=value["q"]["S"],
        weight=num("w"),
        priority=int(value["pr"]["N"]),
        demand=num("d"),
        prev=num("p"),
        switch_ms=int(value["sw"]["N"]),
        seen_ms=int(value["seen"]["N"]),
        loop_id=value["lid"]["S"],
        generation=int(value.get("g", {"N": "0"})["N"]),
        released=bool(value.get("rel", {"BOOL": False})["BOOL"]),
        then=num("t") if "t" in value else None,
        then_ms=int(value["tsw"]["N"]) if "tsw" in value else 0,
        gives_after=int(value["ga"]["N"]) if "ga" in value else None,
    )


def store_beside(tokens: Any) -> DynamoSharedStore:
    """A store on the table of a :class:`~poller.lease.tokens.TokenStore` (its model's name, region, host)."""
    meta = tokens.model.Meta
    return store_for_table(meta.table_name, region=getattr(meta, "region", None), host=getattr(meta, "host", None))


def store_for_table(table: str, *, region: str | None, host: str | None) -> DynamoSharedStore:
    """A store on the token table named as the token model names it (``host``: an endpoint override)."""
    import boto3

    from poller.aws.clients import dynamodb_client

    if host is None and region is not None:
        return DynamoSharedStore(dynamodb_client(region), table)
    return DynamoSharedStore(boto3.client("dynamodb", region_name=region, endpoint_url=host), table)
