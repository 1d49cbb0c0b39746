"""The producer library: what producers and handlers import to send work into queues, in batches of 10,
with message timers spread by a plan (docs/producers.md).

    import producer

    plan = producer.plan_spread(len(jobs), mean_job_s=0.5, max_concurrency=25)
    report = producer.send_messages(boto3.client("sqs"), queue_url, jobs, timers=plan)

    run = producer.start_run("nightly-crawl")                      # runs: docs/runs.md
    producer.send_messages(boto3.client("sqs"), queue_url, jobs, run=run)

    # in a handler: the next stage of a pipeline, by its key in queues.yml (and the queue's sends_to)
    producer.send_messages(sqs, producer.queue_url("items", context), items, run=producer.run_of(record))
"""

from __future__ import annotations

from producer.exceptions import BadSend, MessageTooLarge, SendIncomplete
from producer.plan import Jitter, SpreadPlan, Timers, parse_jitter, plan_spread
from producer.queues import queue_url
from producer.report import FailedMessage, SendReport
from producer.runs import Run, list_runs, run_of, run_status, start_run
from producer.send import send_messages

__all__ = [
    "BadSend",
    "FailedMessage",
    "Jitter",
    "MessageTooLarge",
    "Run",
    "SendIncomplete",
    "SendReport",
    "SpreadPlan",
    "Timers",
    "list_runs",
    "parse_jitter",
    "plan_spread",
    "queue_url",
    "run_of",
    "run_status",
    "send_messages",
    "start_run",
]
