"""The control plane's decisions: what an alarm change or a scheduled tick does to each queue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from poller.clock import epoch_ms
from poller.config import Config, QueueConfig
from poller.lease.tokens import TokenStore
from poller.logs import log
from poller.metrics import (
    LIVE_LOOPS,
    LOOPS_RETIRED,
    LOOPS_REVIVED,
    LOOPS_STARTED,
    WANTED_LOOPS,
    Metric,
    with_metrics,
)
from scaler.alarms.events import AlarmChange, alarm_changes
from scaler.alarms.names import parse_depth_alarm
from scaler.alarms.states import AlarmStates
from scaler.exceptions import BadAlarmEvent, ForeignAlarm
from scaler.overrides import OverrideStore
from scaler.reconcile import Reconciler
from scaler.wanted import ALARM, wanted_loops

UP, DOWN = "up", "down"


@dataclass(frozen=True)
class ControlPlane:
    config: Config
    prefix: str  # LOOPS_PREFIX
    tokens: TokenStore
    alarms: AlarmStates
    overrides: OverrideStore
    reconciler: Reconciler

    # -- scale_up / scale_down ---------------------------------------------------------------------

    def on_alarm_event(self, event: Any, direction: str) -> list[dict[str, Any]]:
        """Handle every alarm change in an SNS or direct alarm event; returns one summary per change.
        Malformed, foreign and irrelevant changes are logged and skipped; AWS failures raise."""
        results = []
        for change in alarm_changes(event):
            if isinstance(change, BadAlarmEvent):
                log("warning", "alarm_event_dropped", direction=direction, error=str(change))
                results.append({"action": "dropped", "error": str(change)})
                continue
            results.append(self._on_change(change, direction))
        return results

    def _on_change(self, change: AlarmChange, direction: str) -> dict[str, Any]:
        summary: dict[str, Any] = {"alarm": change.name, "new_state": change.new_state, "old_state": change.old_state}
        try:
            alarm = parse_depth_alarm(change.name, prefix=self.prefix, config=self.config)
        except ForeignAlarm as exc:
            log("info", "alarm_ignored", direction=direction, why=str(exc), **summary)
            return {**summary, "action": "ignored", "why": str(exc)}
        queue = alarm.queue
        if change.queue_names and queue.queue_name not in change.queue_names:
            why = f"alarm dimensions name {sorted(change.queue_names)}, not queue {queue.queue_name!r} of {queue.key!r}"
            log("error", "alarm_dimension_mismatch", direction=direction, why=why, **summary)
            return {**summary, "action": "ignored", "why": why}
        if direction == UP and change.new_state != ALARM:
            why = "scale_up acts on a change into ALARM"
        elif direction == DOWN and change.old_state != ALARM:
            # INSUFFICIENT_DATA -> OK is a new alarm settling, not a backlog that went away.
            why = "scale_down acts only on a change out of ALARM"
        else:
            why = ""
        if why:
            log("info", "alarm_ignored", direction=direction, queue=queue.key, why=why, **summary)
            return {**summary, "action": "ignored", "why": why}
        url = queue.queue_url(region=change.region, account_id=change.account_id)
        wanted = wanted_loops(queue, self.alarms.of_queue(queue, newer=change), self.overrides.pinned_for(queue.key))
        changes = self.reconciler.scale(url, wanted, grow=direction == UP, shrink=direction == DOWN)
        fields = {"direction": direction, "queue": queue.key, "wanted": wanted, **changes.as_dict(), **summary}
        metrics = {
            LOOPS_STARTED: len(changes.started) or None,
            LOOPS_RETIRED: len(changes.retired) or None,
            LIVE_LOOPS: changes.live,
            WANTED_LOOPS: wanted,
        }
        log("info", "scaled", **self._with_metrics(fields, metrics))
        return {**summary, "action": "scaled", "queue": queue.key, "wanted": wanted, **changes.as_dict()}

    # -- restart -------------------------------------------------------------------------------------

    def restart(self, *, region: str, account_id: str) -> dict[str, Any]:
        """Revive dead loops and move every queue to its wanted count; release rows of queues that are no
        longer configured. Reviving needs no alarm data: if CloudWatch cannot be read, dead loops are still
        revived and only the reconcile waits for the next run. One failure does not stop the rest; the
        first is raised at the end, so it shows in the function's errors."""
        failures: list[tuple[str, Exception]] = []

        def attempt(what: str, call: Any) -> Any:
            try:
                return call()
            except Exception as exc:  # reported after everything else had its turn
                log("error", "restart_step_failed", step=what, error=repr(exc))
                failures.append((what, exc))
                return None

        states = attempt("read alarm states", lambda: self.alarms.of_all(self.config))
        pinned = attempt("read overrides", self.overrides.pinned)
        report: dict[str, Any] = {}
        configured = set()
        for key, queue in self.config.queues.items():
            url = queue.queue_url(region=region, account_id=account_id)
            configured.add(url)
            wanted = None if states is None or pinned is None else wanted_loops(queue, states[key], pinned.get(key))
            report[key] = attempt(key, lambda q=queue, u=url, w=wanted: self._restart_queue(q, u, w, pinned))
        urls = attempt("list queues with tokens", self.tokens.queue_urls) or set()
        for url in sorted(urls - configured):
            released = attempt(url, lambda u=url: self.reconciler.release_all(u))
            if released is not None:
                log("warning", "orphan_tokens_released", queue_url=url, tokens=released.released)
                report[url] = released.as_dict()
        if failures:
            what, first = failures[0]
            raise RuntimeError(f"restart: {len(failures)} step(s) failed, first {what!r}: {first!r}") from first
        return report

    def _restart_queue(
        self, queue: QueueConfig, url: str, wanted: int | None, pinned: dict[str, int] | None
    ) -> dict[str, Any]:
        changes = self.reconciler.revive(url, stale_after_s=self.config.stale_after_s, wanted=wanted)
        live = None
        if wanted is not None:
            scaled = self.reconciler.scale(url, wanted)
            live = scaled.live
            changes.extend(scaled)
        result = {"wanted": wanted, "pinned": (pinned or {}).get(queue.key), **changes.as_dict()}
        # One line per queue and run, changes or not: the live and wanted counts are gauges the dashboard
        # graphs every minute. Counts of changes only when there were some (a custom metric is billed for
        # each hour it gets data, so a resting queue pays for the two gauges alone).
        metrics = {
            LOOPS_STARTED: len(changes.started) or None,
            LOOPS_REVIVED: len(changes.revived) or None,
            LOOPS_RETIRED: len(changes.retired) or None,
            LIVE_LOOPS: live,
            WANTED_LOOPS: wanted,
        }
        fields = {"queue": queue.key, "changed": changes.any(), **result}
        log("info", "reconciled", **self._with_metrics(fields, metrics))
        return result

    def _with_metrics(self, fields: dict[str, Any], metrics: dict[Metric, int | None]) -> dict[str, object]:
        timestamp = epoch_ms(self.reconciler.clock)
        return with_metrics(fields, metrics, timestamp_ms=timestamp, enabled=self.config.poller.metrics)
