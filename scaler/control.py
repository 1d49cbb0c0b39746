"""The control plane's decisions: what an alarm change, a loop's growth request or a scheduled tick does
to each queue (docs/scaling.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from poller.clock import epoch_ms
from poller.config import Config, QueueConfig
from poller.downstream.state import SharedStore
from poller.lease.tokens import TokenState, TokenStore
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
from scaler.depth import QueueDepths, in_parallel
from scaler.exceptions import BadAlarmEvent, ForeignAlarm
from scaler.growth import growth_queue, is_growth_request
from scaler.holds import HoldStore
from scaler.limit_cap import LimitCap, limit_cap, limit_of
from scaler.overrides import OverrideStore
from scaler.reconcile import Changes, Reconciler
from scaler.share import queue_share, read_lanes, shared_names, waiting_for_share
from scaler.wanted import ALARM, capped, combined_loops, rule_loops

UP, DOWN = "up", "down"


@dataclass(frozen=True)
class Decision:
    """A queue's wanted count and what it came from (for the log line)."""

    wanted: int
    depth: int | None  # None: not read (alarm-only path) or the read failed
    held: int | None  # what the cool-down holds; None: its memory could not be read (then nothing shrinks)
    rule: int  # max(alarm rule, depth rule) now
    limited: LimitCap | None = None  # the rate limit's cap and its inputs; None: no limit or no figures

    def fields(self) -> dict[str, Any]:
        limited = None if self.limited is None else self.limited.fields()
        return {"wanted": self.wanted, "depth": self.depth, "held": self.held, "rule": self.rule, "limited": limited}


@dataclass(frozen=True)
class ControlPlane:
    config: Config
    prefix: str  # LOOPS_PREFIX
    tokens: TokenStore
    alarms: AlarmStates
    overrides: OverrideStore
    reconciler: Reconciler
    depths: QueueDepths | None = None  # None: the alarm-only path (no depth reads)
    holds: HoldStore | None = None  # None: no cool-down (loops are removed as soon as the rule allows)
    shares: SharedStore | None = None  # shared downstreams' state rows; None: a queue's cap uses the whole limit

    # -- scale_up / scale_down ---------------------------------------------------------------------

    def on_alarm_event(
        self, event: Any, direction: str, *, region: str = "", account_id: str = ""
    ) -> list[dict[str, Any]]:
        """Handle every alarm change in an SNS or direct alarm event, or a loop's growth request (scale_up
        only; ``region`` and ``account_id`` name its queue's URL); returns one summary per change.
        Malformed, foreign and irrelevant changes are logged and skipped; AWS failures raise."""
        if is_growth_request(event):
            return [self._on_growth_request(event, direction, region=region, account_id=account_id)]
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
        return self._scale_one(queue, url, direction, self.alarms.of_queue(queue, newer=change), summary)

    def _on_growth_request(
        self, event: dict[str, Any], direction: str, *, region: str, account_id: str
    ) -> dict[str, Any]:
        summary: dict[str, Any] = {"request": "growth", "loop_id": event.get("loop_id")}
        try:
            if direction != UP:
                raise BadAlarmEvent("a growth request goes to scale_up, not scale_down")
            queue = growth_queue(event, self.config)
        except BadAlarmEvent as exc:
            log("warning", "growth_request_dropped", direction=direction, error=str(exc), **summary)
            return {**summary, "action": "dropped", "error": str(exc)}
        # Our own URL for the queue, not the event's: nothing in the request is trusted but which queue.
        url = queue.queue_url(region=region, account_id=account_id)
        return self._scale_one(queue, url, UP, self.alarms.of_queue(queue), summary)

    def _scale_one(
        self, queue: QueueConfig, url: str, direction: str, states: dict[int, str], summary: dict[str, Any]
    ) -> dict[str, Any]:
        now = epoch_ms(self.reconciler.clock)
        seen = self.holds.of(queue.key) if self.holds is not None else {}
        # A rate-limited queue's rows carry the loops' paces (the cap); scale then needs no read of its own.
        rows = list(self.tokens.tokens_of(url)) if limit_of(queue) is not None else None
        lanes = read_lanes(self.shares, [queue.shared.name] if queue.shared is not None else [])
        share = queue_share(queue, lanes, now_ms=now)
        waiting = waiting_for_share(queue, lanes, now_ms=now)
        decision = self._decide(
            queue, url, states, self.overrides.pinned_for(queue.key), seen, now, rows=rows, share=share, waiting=waiting
        )
        # An alarm's OK never takes a queue below what the depth or the cool-down still want: the
        # decision holds both, and scale_down only shrinks to it.
        changes = self.reconciler.scale(url, decision.wanted, grow=direction == UP, shrink=direction == DOWN, rows=rows)
        fields = {"direction": direction, "queue": queue.key, **decision.fields(), **changes.as_dict(), **summary}
        log("info", "scaled", **self._with_metrics(fields, self._metrics(changes, decision.wanted)))
        return {**summary, "action": "scaled", "queue": queue.key, **decision.fields(), **changes.as_dict()}

    def _decide(
        self,
        queue: QueueConfig,
        url: str,
        states: dict[int, str] | None,
        pinned: int | None,
        seen: dict[int, int] | None,
        now_ms: int,
        *,
        rows: list[TokenState] | None = None,
        share: float | None = None,
        waiting: bool = False,
    ) -> Decision:
        """``max(min(limit cap, max(alarm rule, depth rule)), cool-down)`` for one queue, remembering the
        capped count for the cool-down. ``seen``: the cool-down's memory of the queue (None: unreadable);
        ``rows``: its token rows as read, whose paces give the cap (None: no cap); ``share``: its share of
        its shared downstream (None: unknown, the whole limit counts); ``waiting``: one of its loops waits for its
        first share (scaler.share.waiting_for_share)."""
        depth = self._read_depth(queue, url)
        rule = rule_loops(queue, states, depth)
        fresh_s = self.config.stale_after_s
        # Without figures the cap grows a loop at a time for a backlog its loops have not reported on yet. An
        # empty queue has none: its loops' figures went stale with their work, and a depth alarm still in
        # ALARM from the backlog that drained (CloudWatch's minutes behind) would otherwise start a loop for it.
        empty = depth == 0
        cap = (
            None
            if rows is None
            else limit_cap(queue, rows, now_ms=now_ms, fresh_s=fresh_s, share=share, waiting=waiting, empty=empty)
        )
        # poller.limit_cap: false still measures the cap (the log and status show it) but does not apply it.
        applied = cap if self.config.poller.limit_cap else None
        cap_loops = None if applied is None else applied.loops
        keep = None if applied is None else applied.keep_while_waiting
        held = 0 if self.holds is None else None
        if seen is not None and self.holds is not None:
            held = self.holds.held(queue, seen, now_ms=now_ms)
            if pinned is None:
                self.holds.record(queue, capped(rule, cap_loops), now_ms=now_ms, seen=seen, at_most=keep)
        wanted = combined_loops(queue, states, depth, held=held or 0, pinned=pinned, cap=cap_loops, keep=keep)
        return Decision(wanted=wanted, depth=depth, held=held, rule=rule, limited=cap)

    def _read_depth(self, queue: QueueConfig, url: str) -> int | None:
        if self.depths is None or not self.config.poller.depth_reads:
            return None
        try:
            return self.depths.depth(url)
        except Exception as exc:  # the alarms decide alone until the next read
            log("warning", "depth_read_failed", queue=queue.key, queue_url=url, error=repr(exc))
            return None

    # -- restart -------------------------------------------------------------------------------------

    def restart(self, *, region: str, account_id: str) -> dict[str, Any]:
        """Revive dead loops and move every queue to its wanted count; release rows of queues that are no
        longer configured. Queues are handled many at once (scaler/depth.py). Reviving needs no alarm
        data: if CloudWatch cannot be read, dead loops are still revived and only the reconcile waits for
        the next run. One failure does not stop the rest; the first is raised at the end, so it shows in
        the function's errors."""
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
        holds = attempt("read cool-downs", self.holds.all) if self.holds is not None else {}
        now = epoch_ms(self.reconciler.clock)
        lanes = read_lanes(self.shares, shared_names(self.config))  # each shared downstream's row, once
        queues = list(self.config.queues.items())
        urls = {key: queue.queue_url(region=region, account_id=account_id) for key, queue in queues}

        def one(key: str, queue: QueueConfig) -> Callable[[], Any]:
            def call() -> dict[str, Any]:
                decision = None
                # One consistent read of the rows serves the cap, revive and reconcile.
                rows = list(self.tokens.tokens_of(urls[key]))
                if states is not None and pinned is not None:
                    seen = None if holds is None else holds.get(key, {})
                    share = queue_share(queue, lanes, now_ms=now)
                    waiting = waiting_for_share(queue, lanes, now_ms=now)
                    decision = self._decide(
                        queue,
                        urls[key],
                        states[key],
                        pinned.get(key),
                        seen,
                        now,
                        rows=rows,
                        share=share,
                        waiting=waiting,
                    )
                return self._restart_queue(queue, urls[key], decision, pinned, rows)

            return lambda: attempt(key, call)

        results = in_parallel(one(key, queue) for key, queue in queues)
        report: dict[str, Any] = dict(zip((key for key, _ in queues), results, strict=True))
        listed = attempt("list queues with tokens", self.tokens.queue_urls) or set()
        for url in sorted(listed - set(urls.values())):
            released = attempt(url, lambda u=url: self.reconciler.release_all(u))
            if released is not None:
                log("warning", "orphan_tokens_released", queue_url=url, tokens=released.released)
                report[url] = released.as_dict()
        if failures:
            what, first = failures[0]
            raise RuntimeError(f"restart: {len(failures)} step(s) failed, first {what!r}: {first!r}") from first
        return report

    def _restart_queue(
        self,
        queue: QueueConfig,
        url: str,
        decision: Decision | None,
        pinned: dict[str, int] | None,
        rows: list[TokenState],
    ) -> dict[str, Any]:
        wanted = None if decision is None else decision.wanted
        # Revive only takes rows over (same slots) or releases them, so what scale needs is the rows read
        # less the released ones.
        changes = self.reconciler.revive(url, stale_after_s=self.config.stale_after_s, wanted=wanted, rows=rows)
        live = None
        if decision is not None:
            kept = [row for row in rows if row.token not in changes.released]
            # The cool-down's memory unreadable: grow, but shrink nothing on a count that forgot it.
            scaled = self.reconciler.scale(url, decision.wanted, shrink=decision.held is not None, rows=kept)
            live = scaled.live
            changes.extend(scaled)
        result = {
            **(decision.fields() if decision else {"wanted": None}),
            "pinned": (pinned or {}).get(queue.key),
            **changes.as_dict(),
        }
        fields = {"queue": queue.key, "changed": changes.any(), **result}
        metrics = self._metrics(changes, wanted, live=live)
        log("info", "reconciled", **self._with_metrics(fields, metrics))
        return result

    @staticmethod
    def _metrics(changes: Changes, wanted: int | None, *, live: int | None = None) -> dict[Metric, int | None]:
        """Counts of changes only when there were some. The live and wanted gauges only while a queue has
        or wants loops, and once more on the run that took it to zero: a custom metric is billed for each
        hour it gets data, and a resting queue must cost nothing (docs/cost.md)."""
        live = changes.live if live is None else live
        active = bool(live or wanted or changes.any())
        return {
            LOOPS_STARTED: len(changes.started) or None,
            LOOPS_REVIVED: len(changes.revived) or None,
            LOOPS_RETIRED: len(changes.retired) or None,
            LIVE_LOOPS: live if active else None,
            WANTED_LOOPS: wanted if active else None,
        }

    def _with_metrics(self, fields: dict[str, Any], metrics: dict[Metric, int | None]) -> dict[str, object]:
        timestamp = epoch_ms(self.reconciler.clock)
        return with_metrics(fields, metrics, timestamp_ms=timestamp, enabled=self.config.poller.metrics)
