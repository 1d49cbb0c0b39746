"""Runs: work fanned out through queues, counted as loops handle it, with one notice when it is done
(docs/runs.md). The producer library (producer/runs.py) starts runs and sends into them; the loop counts
them here."""

from __future__ import annotations

from poller.runs.book import RunBook
from poller.runs.counter import RunCounter
from poller.runs.exceptions import BadRunName, RunError, RunExists, RunFinished, UnknownRun
from poller.runs.notice import REPUBLISH_AFTER_MS, RUNS_TOPIC_ARN, Notifier, notice, sns_publisher
from poller.runs.table import RUNS_PARTITION, CountWrite, RunStatus, RunTable
from poller.runs.tag import RUN_ATTRIBUTE, RunTag, check_run_name, tag_of_message, tag_of_record

__all__ = [
    "REPUBLISH_AFTER_MS",
    "RUNS_PARTITION",
    "RUNS_TOPIC_ARN",
    "RUN_ATTRIBUTE",
    "BadRunName",
    "CountWrite",
    "Notifier",
    "RunBook",
    "RunCounter",
    "RunError",
    "RunExists",
    "RunFinished",
    "RunStatus",
    "RunTable",
    "RunTag",
    "UnknownRun",
    "check_run_name",
    "notice",
    "sns_publisher",
    "tag_of_message",
    "tag_of_record",
]
