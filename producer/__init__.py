"""The producer library: what producers and handlers import to send work into queues, in batches of 10,
with message timers spread by a plan (docs/producers.md).

    import producer

    plan = producer.plan_spread(len(jobs), mean_job_s=0.5, max_concurrency=25)
    report = producer.send_messages(boto3.client("sqs"), queue_url, jobs, timers=plan)

    run = producer.start_run("nightly-crawl")                      # runs: docs/runs.md
    producer.send_messages(boto3.client("sqs"), queue_url, jobs, run=run)
"""

from __future__ import annotations

from producer.exceptions import BadSend, MessageTooLarge, SendIncomplete
from producer.plan import Jitter, SpreadPlan, Timers, parse_jitter, plan_spread
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
    "run_of",
    "run_status",
    "send_messages",
    "start_run",
]
