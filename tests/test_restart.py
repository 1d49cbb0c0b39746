"""restart on moto: revives dead loops, reconciles every queue to its wanted count, clears orphans."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import ACCOUNT, REGION, FakeClock, log_events
from scaler_rig import CONFIG, PREFIX, PlaneRig, build_plane, url_of

from poller.clock import epoch_ms
from poller.config import parse_config
from poller.lease.tokens import TokenState, TokenStore
from scaler.reconcile import ERROR_REVIVE_AFTER_S

STALE_S = parse_config(CONFIG).stale_after_s  # heartbeat 30 + longest poll 20 + margin 20


@pytest.fixture
def rig(tokens: TokenStore, clock: FakeClock) -> PlaneRig:
    return build_plane(tokens, clock)


def restart(rig: PlaneRig) -> dict[str, Any]:
    return rig.plane.restart(region=REGION, account_id=ACCOUNT)


def working_loop(rig: PlaneRig, clock: FakeClock, token: str = "slot-0001") -> TokenState:
    """A row whose loop claimed step 0 just now."""
    url = url_of("orders")
    rig.tokens.create(url, token, loop_id=f"L-{token}", now_ms=epoch_ms(clock))
    return rig.tokens.claim(url, token, loop_id=f"L-{token}", generation=0, claim_id="c", now_ms=epoch_ms(clock))


def test_first_run_starts_every_queue_at_its_wanted_count(rig: PlaneRig) -> None:
    report = restart(rig)
    assert report["orders"]["started"] == ["slot-0001"]  # min_loops 1
    assert report["billing"]["started"] == []  # min_loops 0
    assert len(rig.invoker.calls) == 1


def test_a_fresh_heartbeat_is_left_alone_and_a_stale_one_revived(
    rig: PlaneRig, clock: FakeClock, loop_logs: Any
) -> None:
    old = working_loop(rig, clock)
    clock.advance(STALE_S)
    assert restart(rig)["orders"]["revived"] == []  # exactly at the threshold: still alive

    clock.advance(1)
    report = restart(rig)

    assert report["orders"]["revived"] == ["slot-0001"]
    (row,) = rig.rows("orders")
    assert row.loop_id != old.loop_id and row.generation == old.generation + 1
    assert rig.invoker.calls[-1][1] == {
        "queue_url": url_of("orders"),
        "token": "slot-0001",
        "loop_id": row.loop_id,
        "generation": row.generation,
    }
    assert log_events(loop_logs, "loop_revived")[0]["old_loop_id"] == old.loop_id


def test_a_row_never_claimed_is_revived_after_the_grace(rig: PlaneRig, clock: FakeClock) -> None:
    restart(rig)  # creates slot-0001 and "starts" it; the start is lost
    clock.advance(STALE_S - 5)
    assert restart(rig)["orders"]["revived"] == []
    clock.advance(10)
    assert restart(rig)["orders"]["revived"] == ["slot-0001"]


class HeartbeatRacesTakeover(TokenStore):
    """The old loop heartbeats between restart's read and its takeover."""

    def takeover(self, seen: TokenState, *, new_loop_id: str, now_ms: int) -> TokenState:
        self.heartbeat(seen.queue_url, seen.token, loop_id=seen.loop_id, generation=seen.generation, now_ms=now_ms)
        return super().takeover(seen, new_loop_id=new_loop_id, now_ms=now_ms)


def test_takeover_loses_to_a_live_heartbeat(tokens: TokenStore, clock: FakeClock) -> None:
    rig = build_plane(HeartbeatRacesTakeover(tokens.model), clock)
    old = working_loop(rig, clock)
    clock.advance(STALE_S + 1)

    assert restart(rig)["orders"]["revived"] == []
    (row,) = rig.rows("orders")
    assert row.loop_id == old.loop_id and rig.invoker.calls == []


def test_lost_notification_and_a_queue_that_stays_deep_are_caught(rig: PlaneRig, clock: FakeClock) -> None:
    for token in ("slot-0001", "slot-0002"):
        working_loop(rig, clock, token)
    rig.set_state(f"{PREFIX}-orders-depth-2", "ALARM")  # its notification never arrived
    rig.set_state(f"{PREFIX}-billing-depth-1", "ALARM")

    report = restart(rig)

    assert report["orders"]["started"] == ["slot-0003", "slot-0004"]
    assert report["billing"]["started"] == ["slot-0001", "slot-0002", "slot-0003"]
    assert restart(rig)["orders"]["started"] == []  # and the next minute changes nothing


def test_extra_rows_are_retired_and_dead_retiring_rows_released(rig: PlaneRig, clock: FakeClock) -> None:
    for token in ("slot-0001", "slot-0002", "slot-0003"):
        working_loop(rig, clock, token)
    assert restart(rig)["orders"]["retired"] == ["slot-0002", "slot-0003"]

    clock.advance(STALE_S + 1)  # their loops never came back to delete their rows
    rig.tokens.heartbeat(url_of("orders"), "slot-0001", loop_id="L-slot-0001", generation=1, now_ms=epoch_ms(clock))
    report = restart(rig)

    assert report["orders"]["released"] == ["slot-0002", "slot-0003"]
    assert [r.token for r in rig.rows("orders")] == ["slot-0001"]


def test_rows_of_queues_no_longer_configured_are_released(rig: PlaneRig, clock: FakeClock, loop_logs: Any) -> None:
    gone = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/retired-queue"
    rig.tokens.create(gone, "slot-0001", loop_id="X", now_ms=0)
    rig.overrides.pin(rig.config.queue("orders"), 1, now_ms=0)  # a control row: must survive the scan

    report = restart(rig)

    assert report[gone]["released"] == ["slot-0001"]
    assert rig.tokens.get(gone, "slot-0001") is None
    assert rig.overrides.pinned() == {"orders": 1}
    assert log_events(loop_logs, "orphan_tokens_released")[0]["queue_url"] == gone


def test_a_loop_stopped_by_an_error_is_revived_only_after_a_back_off(rig: PlaneRig, clock: FakeClock) -> None:
    old = working_loop(rig, clock)
    clock.advance(STALE_S + 1)
    rig.tokens.record_error(
        url_of("orders"), "slot-0001", loop_id=old.loop_id, error="queue gone", now_ms=epoch_ms(clock)
    )
    clock.advance(60)
    assert restart(rig)["orders"]["revived"] == []
    clock.advance(ERROR_REVIVE_AFTER_S)
    assert restart(rig)["orders"]["revived"] == ["slot-0001"]


def test_pause_override_retires_every_loop(rig: PlaneRig, clock: FakeClock) -> None:
    working_loop(rig, clock)
    rig.overrides.pin(rig.config.queue("orders"), 0, now_ms=0)
    report = restart(rig)
    assert report["orders"]["pinned"] == 0 and report["orders"]["retired"] == ["slot-0001"]


class FailsForOneQueue(TokenStore):
    def tokens_of(self, queue_url: str, *, page_size: int | None = None) -> Any:
        if queue_url == url_of("orders"):
            raise RuntimeError("orders partition unreadable")
        return super().tokens_of(queue_url, page_size=page_size)


def test_one_queue_failing_does_not_stop_the_others(tokens: TokenStore, clock: FakeClock, loop_logs: Any) -> None:
    rig = build_plane(FailsForOneQueue(tokens.model), clock)
    rig.set_state(f"{PREFIX}-billing-depth-1", "ALARM")
    with pytest.raises(RuntimeError, match=r"restart: 1 step\(s\) failed, first 'orders'"):
        restart(rig)
    assert len(list(tokens.tokens_of(url_of("billing")))) == 3
    assert log_events(loop_logs, "restart_step_failed")[0]["step"] == "orders"


class AlarmsUnreadable:
    def of_all(self, config: Any) -> Any:
        raise RuntimeError("DescribeAlarms throttled")


def test_dead_loops_are_revived_even_when_alarms_cannot_be_read(rig: PlaneRig, clock: FakeClock) -> None:
    old = working_loop(rig, clock)
    clock.advance(STALE_S + 1)
    object.__setattr__(rig.plane, "alarms", AlarmsUnreadable())

    with pytest.raises(RuntimeError, match="read alarm states"):
        restart(rig)

    (row,) = rig.rows("orders")
    assert row.loop_id != old.loop_id  # revived; only the reconcile waited for the next run
    assert len(rig.invoker.calls) == 1


def test_a_dead_row_above_the_wanted_count_is_released_not_revived(rig: PlaneRig, clock: FakeClock) -> None:
    for token in ("slot-0001", "slot-0002"):
        working_loop(rig, clock, token)
    clock.advance(STALE_S + 1)
    report = restart(rig)
    assert (report["orders"]["revived"], report["orders"]["released"]) == (["slot-0001"], ["slot-0002"])
    assert [r.token for r in rig.rows("orders")] == ["slot-0001"]


def test_a_dead_row_whose_loop_came_back_after_restart_read_it_is_not_released(rig: PlaneRig, clock: FakeClock) -> None:
    """Restart reads the rows, then releases those that looked dead above the wanted count: a loop that
    claimed its next step (or heartbeat) in between keeps its row, as a takeover would leave it (the
    demo's one double_owned batch: a row released 0.7 s after its loop's claim, its batch then run)."""
    url = url_of("orders")
    for token in ("slot-0001", "slot-0002"):
        working_loop(rig, clock, token)
    clock.advance(STALE_S + 1)
    seen = list(rig.tokens.tokens_of(url))  # restart's read: both look dead
    late = next(row for row in seen if row.token == "slot-0002")
    rig.tokens.claim(
        url, late.token, loop_id=late.loop_id, generation=late.generation, claim_id="c2", now_ms=epoch_ms(clock)
    )
    changes = rig.plane.reconciler.revive(url, stale_after_s=STALE_S, wanted=1, rows=seen)
    assert changes.released == [] and rig.tokens.get(url, "slot-0002") is not None
    assert changes.revived == ["slot-0001"]
