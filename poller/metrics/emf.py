"""CloudWatch embedded metric format (EMF): a structured log line that also carries metrics.

CloudWatch Logs turns such a line into metrics with no PutMetricData call (AWS-FACTS.md): the line keeps
every field it had, and gains the metric values and the dimensions as top-level members plus an ``_aws``
member that names them::

    {"level": "info", "event": "batch", "queue": "orders", ..., "deployment": "sqs-loops-prod",
     "MessagesHandled": 10, "MessageAge": [812, 790], ...,
     "_aws": {"Timestamp": 1764670000000, "CloudWatchMetrics": [{"Namespace": "SqsLoops",
              "Dimensions": [["deployment", "queue"]], "Metrics": [{"Name": "MessagesHandled", "Unit": "Count"}, ...]}]}}
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from poller.aws.environment import LOOPS_PREFIX
from poller.metrics.names import DEPLOYMENT, DIMENSIONS, NAMESPACE, QUEUE, Metric

MAX_METRICS_PER_DIRECTIVE = 100
"""EMF specification: at most 100 metrics in one directive."""
MAX_DIMENSIONS_PER_SET = 30
"""EMF specification: at most 30 dimensions in one dimension set."""
MAX_VALUES_PER_METRIC = 100
"""EMF specification: a metric's value may be an array of at most 100 numbers (each one a sample)."""
LOCAL_DEPLOYMENT = "local"
"""The ``deployment`` dimension where ``LOOPS_PREFIX`` is not set (tests, a bare local run)."""

Value = float | int | Sequence[float | int] | None
"""A metric's value: a number, a list of samples (empty: none to report), or None (not known here)."""


def deployment() -> str:
    """The ``deployment`` dimension: this function's ``LOOPS_PREFIX``."""
    return os.environ.get(LOOPS_PREFIX) or LOCAL_DEPLOYMENT


def with_metrics(
    fields: Mapping[str, object], values: Mapping[Metric, Value], *, timestamp_ms: int, enabled: bool = True
) -> dict[str, object]:
    """``fields`` (which must hold the ``queue`` key) plus the EMF members for ``values``. Metrics whose
    value is None or an empty list are left out; with none left (or not ``enabled``: the config's
    ``poller.metrics``) the fields come back unchanged, so a line never names a metric it does not carry."""
    out = dict(fields)
    if not enabled:
        return out
    named: list[dict[str, str]] = []
    wide: list[dict[str, str]] = []  # also by deployment alone (Metric.per_deployment)
    for metric, value in values.items():
        if value is None or (isinstance(value, Sequence) and not value):
            continue
        if isinstance(value, Sequence):
            if len(value) > MAX_VALUES_PER_METRIC:
                raise ValueError(f"{metric.name}: {len(value)} values; EMF allows {MAX_VALUES_PER_METRIC}")
            out[metric.name] = [round(float(v), 1) for v in value]
        else:
            out[metric.name] = round(float(value), 1) if isinstance(value, float) else value
        named.append({"Name": metric.name, "Unit": metric.unit})
        if metric.per_deployment:
            wide.append(named[-1])
    if not named:
        return out
    if len(named) > MAX_METRICS_PER_DIRECTIVE:
        raise ValueError(f"{len(named)} metrics in one line; EMF allows {MAX_METRICS_PER_DIRECTIVE}")
    if QUEUE not in fields:
        raise ValueError(f"a metric line needs the {QUEUE!r} field (its dimension)")
    out[DEPLOYMENT] = deployment()
    out["_aws"] = {
        "Timestamp": timestamp_ms,
        "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [list(DIMENSIONS)], "Metrics": named}]
        + ([{"Namespace": NAMESPACE, "Dimensions": [[DEPLOYMENT]], "Metrics": wide}] if wide else []),
    }
    return out
