"""Every metric the loops and the control plane emit, in one place: name, unit, dimensions, meaning.

The dashboard (deploy/dashboard.py), the alarms and docs/operations.md read these objects, so the code
that emits a metric and the graph that shows it cannot drift apart (tests/test_metrics.py checks the two
against the lines of a real loop run).
"""

from __future__ import annotations

from dataclasses import dataclass

NAMESPACE = "SqsLoops"
"""The one CloudWatch namespace of every sqs-loops metric, whatever the deployment."""

DEPLOYMENT = "deployment"
"""Dimension: the deployment's ``LOOPS_PREFIX`` (``<service>-<stage>``), so two stages in one account
never share a metric."""
QUEUE = "queue"
"""Dimension: the queue's key in the config (the ``queue`` field every log line already carries)."""
DIMENSIONS = (DEPLOYMENT, QUEUE)
"""The one dimension set of every metric: per deployment and queue."""

COUNT = "Count"
MILLISECONDS = "Milliseconds"


@dataclass(frozen=True)
class Metric:
    """One metric: its CloudWatch name (a noun), its unit, the log event that carries it, and what it
    means (docs/operations.md shows this text)."""

    name: str
    unit: str
    event: str
    meaning: str
    per_deployment: bool = False  # also sent with the deployment dimension alone (one alarm for all queues)


# -- from each batch line (poller/loop/batch.py) -------------------------------------------------------
MESSAGES_RECEIVED = Metric("MessagesReceived", COUNT, "batch", "messages a loop received")
MESSAGES_HANDLED = Metric("MessagesHandled", COUNT, "batch", "messages the target handled and the loop deleted")
MESSAGES_FAILED = Metric(
    "MessagesFailed", COUNT, "batch", "messages the target failed (partial batch failure, error or timeout)"
)
MESSAGES_RETURNED = Metric(
    "MessagesReturned", COUNT, "batch", "messages received but never dispatched (lease lost or time up), made visible"
)
BATCH_DURATION = Metric(
    "BatchDuration", MILLISECONDS, "batch", "from a batch's receive to its delete: handling, waits and delete"
)
HANDLER_DURATION = Metric(
    "HandlerDuration", MILLISECONDS, "batch", "one call to the target (a whole batch, or one record when per record)"
)
MESSAGE_AGE = Metric(
    "MessageAge", MILLISECONDS, "batch", "a message's age when a loop received it (now minus SentTimestamp)"
)
SHARE_WAIT = Metric(
    "ShareWaitTime",
    MILLISECONDS,
    "batch",
    "time a loop waited for its rate-limit share or a downstream's Retry-After before this batch's calls",
)

# -- from each loop_end line (poller/loop/run.py) ------------------------------------------------------
RECURSIONS = Metric("Recursions", COUNT, "loop_end", "invocations that handed over to the next step")
LOOPS_STOPPED = Metric(
    "LoopsStopped",
    COUNT,
    "loop_end",
    "invocations that stopped for good (queue gone, handler not importable, ...): the row keeps last_error",
    # One loop-stopped alarm per deployment reads it by deployment: a queue at rest pays no alarm of its
    # own, and the metric gets data only when a loop stops.
    per_deployment=True,
)

# -- from the control plane's reconciled / scaled lines (scaler/control.py) ---------------------------
LOOPS_STARTED = Metric("LoopsStarted", COUNT, "reconciled", "loops the control plane started on new token rows")
LOOPS_REVIVED = Metric("LoopsRevived", COUNT, "reconciled", "dead loops restart took over and started again")
LOOPS_RETIRED = Metric("LoopsRetired", COUNT, "reconciled", "loops asked to stop (scale-down)")
LIVE_LOOPS = Metric("LiveLoops", COUNT, "reconciled", "token rows not retiring after restart's reconcile")
WANTED_LOOPS = Metric("WantedLoops", COUNT, "reconciled", "the loop count the alarms, depth and pins ask for")

ALL_METRICS = (
    MESSAGES_RECEIVED,
    MESSAGES_HANDLED,
    MESSAGES_FAILED,
    MESSAGES_RETURNED,
    BATCH_DURATION,
    HANDLER_DURATION,
    MESSAGE_AGE,
    SHARE_WAIT,
    RECURSIONS,
    LOOPS_STOPPED,
    LOOPS_STARTED,
    LOOPS_REVIVED,
    LOOPS_RETIRED,
    LIVE_LOOPS,
    WANTED_LOOPS,
)
