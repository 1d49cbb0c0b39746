"""The example handler the repository's queues.yml names, run by a real loop."""

from __future__ import annotations

from typing import Any

from conftest import LoopRig, count, send


def test_example_handler_fails_only_what_is_not_json(rig_factory: Any) -> None:
    rig: LoopRig = rig_factory(handler="app.orders.handle", visibility_timeout_s=60)
    send(rig.sqs, rig.url, ['{"id": 1}', "not json", '{"id": 2}'])
    outcome = rig.run(rig.create_token(), budget_s=6)
    assert (outcome.succeeded, outcome.failed) == (2, 1)
    assert count(rig.sqs, rig.url) == (0, 1)
