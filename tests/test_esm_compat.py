"""Handlers written for Lambda's SQS trigger drop in: Powertools' batch processor and its event model."""

from __future__ import annotations

from typing import Any

import powertools_handler
import sample_handlers
from conftest import LoopRig, count, send


def test_powertools_batch_processor_reports_partial_failures(rig_factory: Any) -> None:
    rig: LoopRig = rig_factory(handler="powertools_handler.handler", visibility_timeout_s=60)
    send(rig.sqs, rig.url, ["good-1", "bad-1", "good-2", "bad-2", "good-3"])
    powertools_handler.handled.clear()

    outcome = rig.run(rig.create_token(), budget_s=6)

    assert sorted(powertools_handler.handled) == ["good-1", "good-2", "good-3"]
    assert (outcome.succeeded, outcome.failed) == (3, 2)
    assert count(rig.sqs, rig.url) == (0, 2)


def test_events_validate_against_powertools_sqs_model(rig_factory: Any) -> None:
    from aws_lambda_powertools.utilities.parser.models import SqsModel

    rig: LoopRig = rig_factory()
    rig.sqs.send_message(
        QueueUrl=rig.url,
        MessageBody="hello",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "greeting"}},
    )
    events: list[dict[str, Any]] = []
    sample_handlers.use(lambda event, context: events.append(event))

    rig.run(rig.create_token(), budget_s=6)

    (event,) = events
    model = SqsModel.model_validate(event)
    record = model.Records[0]
    assert record.body == "hello" and record.eventSource == "aws:sqs"
    assert record.messageAttributes["kind"].stringValue == "greeting"
    assert record.attributes.ApproximateReceiveCount == "1"
