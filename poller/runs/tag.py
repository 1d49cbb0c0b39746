"""How a message says which run it belongs to: one message attribute, ``sqs_loops_run``, whose string value
is ``{"run": NAME, "id": ITEM}`` in JSON. ``ITEM`` is the message's own id within the run, chosen by the
sender and kept by every copy of the message, a redriven dead letter included (SQS gives a redriven message
a new MessageId, so counting by MessageId would count it twice)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from poller.logs import log
from poller.runs.exceptions import BadRunName

RUN_ATTRIBUTE = "sqs_loops_run"
"""The message attribute (SQS allows 10 per message; we take one)."""

RUN_NAME_MAX = 200
"""Characters of a run name: it is a DynamoDB range key (at most 1 KiB) and travels on every message."""

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+=-]*$")


@dataclass(frozen=True)
class RunTag:
    """The run a message belongs to and the message's item id within it."""

    run: str
    item: str

    def attribute(self) -> dict[str, dict[str, str]]:
        """The ``MessageAttributes`` entry that carries this tag (SendMessage's shape)."""
        value = json.dumps({"run": self.run, "id": self.item}, separators=(",", ":"))
        return {RUN_ATTRIBUTE: {"DataType": "String", "StringValue": value}}


def check_run_name(name: object) -> str:
    """``name`` if it can name a run, else :class:`BadRunName` saying why."""
    if not isinstance(name, str) or not name:
        raise BadRunName(f"run name: expected a non-empty string, got {name!r:.60}")
    if len(name) > RUN_NAME_MAX:
        raise BadRunName(f"run name {name[:40]!r}...: at most {RUN_NAME_MAX} characters, got {len(name)}")
    if not _RUN_NAME.match(name):
        raise BadRunName(
            f"run name {name!r}: use letters, digits and . _ : / @ + = - (starting with a letter or digit)"
        )
    return name


def tag_of_message(message: dict[str, Any]) -> RunTag | None:
    """The run tag of a message as ReceiveMessage returns it, or None (no run, or an unreadable tag,
    which is logged: the message is still handled, it is only not counted)."""
    value = message.get("MessageAttributes", {}).get(RUN_ATTRIBUTE, {}).get("StringValue")
    return _parse(value, message.get("MessageId", ""))


def tag_of_record(record: dict[str, Any]) -> RunTag | None:
    """The run tag of a record as a handler receives it (the SQS trigger's shape), or None."""
    value = record.get("messageAttributes", {}).get(RUN_ATTRIBUTE, {}).get("stringValue")
    return _parse(value, record.get("messageId", ""))


def _parse(value: object, message_id: str) -> RunTag | None:
    if value is None:
        return None
    try:
        data = json.loads(value) if isinstance(value, str) else None
        run = check_run_name(data.get("run")) if isinstance(data, dict) else None
    except (ValueError, BadRunName) as exc:
        log("warning", "bad_run_tag", message_id=message_id, value=str(value)[:200], error=str(exc))
        return None
    if run is None:
        log("warning", "bad_run_tag", message_id=message_id, value=str(value)[:200], error="expected a JSON object")
        return None
    item = data.get("id") if isinstance(data, dict) else None
    # A tag written by hand may lack the item id: the MessageId then stands in (redrive counts it again).
    return RunTag(run, item if isinstance(item, str) and item else message_id)
