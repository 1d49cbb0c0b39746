"""Rows of the bad-input table (docs/reliability.md) that no other test covers: access denied after the
handler ran, access denied on the token table, a queue deleted under a running loop. Each ends with a
clear log line; no message is lost."""

from __future__ import annotations

from typing import Any

import sample_handlers
from conftest import LoopRig, count, log_events, send
from test_transient import FlakySqs, client_error

from poller.lease.tokens import TokenStore


def test_access_denied_at_the_delete_keeps_the_messages(rig_factory: Any, loop_logs: Any) -> None:
    rig: LoopRig = rig_factory(visibility_timeout_s=3)
    send(rig.sqs, rig.url, ["a", "b", "c"])
    denied = FlakySqs(
        rig.sqs, {"delete_message_batch": (10_000, client_error("AccessDenied", 403, "DeleteMessageBatch"))}
    )

    outcome = rig.run(rig.create_token(), budget_s=6, sqs_client=denied)

    assert (outcome.reason, outcome.recursed) == ("queue_unavailable", False)
    assert sorted(sample_handlers.bodies()) == ["a", "b", "c"]  # handled once...
    assert sum(count(rig.sqs, rig.url)) == 3  # ...and still in the queue: they come back, none is lost
    (end,) = log_events(loop_logs, "loop_end")
    assert end["level"] == "error" and "AccessDenied" in end["error"]
    assert "AccessDenied" in (rig.tokens.get(rig.url, rig.token).last_error or "")  # type: ignore[union-attr]


class DeniedTokens(TokenStore):
    """The token table answers every claim with AccessDeniedException (a policy without UpdateItem)."""

    def claim(self, *args: Any, **kwargs: Any) -> Any:
        raise client_error("AccessDeniedException", 400, "UpdateItem")


def test_access_denied_on_the_token_table_touches_no_message(rig_factory: Any, loop_logs: Any) -> None:
    rig: LoopRig = rig_factory()
    send(rig.sqs, rig.url, ["a"])
    outcome = rig.run(rig.create_token(), budget_s=6, tokens=DeniedTokens(rig.tokens.model))
    assert (outcome.reason, outcome.recursed) == ("unexpected_error", False)
    (end,) = log_events(loop_logs, "loop_end")
    assert end["level"] == "error" and "AccessDeniedException" in end["error"]
    assert count(rig.sqs, rig.url) == (1, 0) and sample_handlers.bodies() == []


def test_a_queue_deleted_while_its_loop_runs_stops_it_with_the_reason(rig_factory: Any, loop_logs: Any) -> None:
    rig: LoopRig = rig_factory()
    send(rig.sqs, rig.url, ["a"])

    def handle_then_delete_the_queue(event: dict[str, Any], context: Any) -> None:
        rig.sqs.delete_queue(QueueUrl=rig.url)  # an operator deletes it while the batch is in hand

    sample_handlers.use(handle_then_delete_the_queue)

    outcome = rig.run(rig.create_token(), budget_s=8)

    assert (outcome.reason, outcome.recursed) == ("queue_unavailable", False)
    assert sample_handlers.bodies() == ["a"]
    (end,) = log_events(loop_logs, "loop_end")
    assert "NonExistentQueue" in end["error"] or "QueueDoesNotExist" in end["error"]
