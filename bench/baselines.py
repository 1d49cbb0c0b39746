"""The two loops sqs-loops is measured against, written as their authors would.

``hand_written_loop``: the smallest correct boto3 consumer: receive up to 10 (same attributes the trigger
delivers), call the handler, delete the batch in one call. No token, no heartbeat, no recursion: the
ceiling of what one Python consumer can do against the same server.

``Recursive2016``: the recursive-poller design of the 2016 sample, as a Lambda handler: each invocation
heartbeats its DynamoDB row (conditional on its loop id), makes one long poll, hands the batch to the
handler, deletes each message with its own call, and invokes itself for the next receive."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from bench.aws import TABLE
from poller.sqs.records import esm_event, queue_arn

RECEIVE = {
    "MaxNumberOfMessages": 10,
    "MessageSystemAttributeNames": ["All"],
    "MessageAttributeNames": ["All"],
}
WAIT_S = 20
VISIBILITY_S = 30


def hand_written_loop(sqs: Any, url: str, handler: Callable[[dict[str, Any], Any], Any], target: int) -> int:
    """Consume until ``target`` messages were handled and deleted; returns how many were."""
    done = 0
    while done < target:
        messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=WAIT_S, VisibilityTimeout=VISIBILITY_S, **RECEIVE)
        batch = messages.get("Messages", [])
        if not batch:
            continue
        handler({"Records": batch}, None)
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        )
        done += len(batch)
    return done


class Recursive2016:
    """One recursion step per receive. ``invoke(payload)`` is the async self-invoke."""

    def __init__(
        self,
        sqs: Any,
        dynamodb: Any,
        invoke: Callable[[dict[str, Any]], None],
        handler: Callable[[dict[str, Any], Any], Any],
        clock: Any,
        region: str = "us-east-1",
    ):
        self.sqs, self.dynamodb, self.invoke, self.handler, self.clock = sqs, dynamodb, invoke, handler, clock
        self.region = region

    def step(self, event: dict[str, Any], context: Any) -> int:
        """One invocation; returns the number of messages handled."""
        url = event["queue_url"]
        # The heartbeat, before every receive: "I am still alive", fenced by the loop id only.
        self.dynamodb.update_item(
            TableName=TABLE,
            Key={"queue_url": {"S": url}, "token": {"S": event["token"]}},
            UpdateExpression="SET last_used = :now",
            ConditionExpression="loop_id = :mine",
            ExpressionAttributeValues={
                ":now": {"N": str(int(self.clock.time() * 1000))},
                ":mine": {"S": event["loop_id"]},
            },
        )
        got = self.sqs.receive_message(QueueUrl=url, WaitTimeSeconds=WAIT_S, VisibilityTimeout=VISIBILITY_S, **RECEIVE)
        messages = got.get("Messages", [])
        if messages:
            self.handler(esm_event(messages, arn=queue_arn(url, self.region), region=self.region), context)
            for message in messages:  # one DeleteMessage per message
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        self.invoke(json.loads(json.dumps(event)))  # the next receive is the next invocation
        return len(messages)
