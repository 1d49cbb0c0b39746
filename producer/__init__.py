"""The producer library: what producers and handlers import to send work into queues, in batches of 10,
with message timers spread by a plan (docs/producers.md).

    import producer

    plan = producer.plan_spread(len(jobs), mean_job_s=0.5, max_concurrency=25)
    report = producer.send_messages(boto3.client("sqs"), queue_url, jobs, timers=plan)
"""

from __future__ import annotations

from producer.exceptions import BadSend, MessageTooLarge, SendIncomplete
from producer.plan import Jitter, SpreadPlan, Timers, parse_jitter, plan_spread
from producer.report import FailedMessage, SendReport
from producer.send import send_messages

__all__ = [
    "BadSend",
    "FailedMessage",
    "Jitter",
    "MessageTooLarge",
    "SendIncomplete",
    "SendReport",
    "SpreadPlan",
    "Timers",
    "parse_jitter",
    "plan_spread",
    "send_messages",
]
