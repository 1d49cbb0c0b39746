"""scale_up and scale_down on moto: alarm notifications move queues to their wanted loop count."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import log_events
from scaler_rig import POLLER, PREFIX, UP_TOPIC, PlaneRig, build_plane, url_of

from poller.lease.tokens import TokenStore
from scaler.control import DOWN, UP
from testing.events import alarm_action_event, alarm_message, sns_event

D1, D2 = f"{PREFIX}-orders-depth-1", f"{PREFIX}-orders-depth-2"
BILLING = f"{PREFIX}-billing-depth-1"


@pytest.fixture
def rig(tokens: TokenStore) -> PlaneRig:
    return build_plane(tokens)


def test_alarm_starts_loops_up_to_the_step(rig: PlaneRig) -> None:
    (result,) = rig.plane.on_alarm_event(rig.notify(D1, "ALARM", "INSUFFICIENT_DATA"), UP)

    assert (result["action"], result["wanted"], result["started"]) == ("scaled", 2, ["slot-0001", "slot-0002"])
    rows = rig.rows("orders")
    assert [(r.token, r.generation, r.last_used) for r in rows] == [("slot-0001", 0, None), ("slot-0002", 0, None)]
    assert rig.invoker.calls == [
        (POLLER, {"queue_url": url_of("orders"), "token": r.token, "loop_id": r.loop_id, "generation": 0}) for r in rows
    ]


def test_duplicate_and_replayed_notifications_change_nothing(rig: PlaneRig) -> None:
    event = rig.notify(D1, "ALARM", "OK")
    rig.plane.on_alarm_event(event, UP)
    before = (rig.rows("orders"), list(rig.invoker.calls))

    (again,) = rig.plane.on_alarm_event(event, UP)

    assert (again["started"], again["retired"]) == ([], [])
    assert (rig.rows("orders"), rig.invoker.calls) == before


def test_deeper_step_then_back_down(rig: PlaneRig) -> None:
    rig.plane.on_alarm_event(rig.notify(D1, "ALARM", "OK"), UP)
    rig.plane.on_alarm_event(rig.notify(D2, "ALARM", "OK"), UP)
    assert rig.live("orders") == ["slot-0001", "slot-0002", "slot-0003", "slot-0004"]

    (down,) = rig.plane.on_alarm_event(rig.notify(D2, "OK", "ALARM"), DOWN)  # step 1 still in ALARM

    assert (down["wanted"], down["retired"]) == (2, ["slot-0003", "slot-0004"])
    assert rig.live("orders") == ["slot-0001", "slot-0002"]
    retiring = [r for r in rig.rows("orders") if r.retiring]
    assert [r.token for r in retiring] == ["slot-0003", "slot-0004"]  # their loops finish the batch in hand

    rig.plane.on_alarm_event(rig.notify(D1, "OK", "ALARM"), DOWN)
    assert rig.live("orders") == ["slot-0001"]  # min_loops


def test_insufficient_data_to_ok_does_not_scale_down(rig: PlaneRig, loop_logs: Any) -> None:
    rig.plane.on_alarm_event(rig.notify(D1, "ALARM", "OK"), UP)
    rig.set_state(D1, "INSUFFICIENT_DATA")

    (result,) = rig.plane.on_alarm_event(rig.notify(D1, "OK", "INSUFFICIENT_DATA"), DOWN)

    assert result["action"] == "ignored" and "out of ALARM" in result["why"]
    assert rig.live("orders") == ["slot-0001", "slot-0002"]


def test_scale_up_ignores_a_change_that_is_not_into_alarm(rig: PlaneRig) -> None:
    (result,) = rig.plane.on_alarm_event(rig.notify(D1, "OK", "INSUFFICIENT_DATA"), UP)
    assert result["action"] == "ignored" and rig.rows("orders") == []


def test_an_out_of_order_notification_loses_to_the_current_state(rig: PlaneRig) -> None:
    """An ALARM notification delivered late, after the alarm went back to OK: nothing to scale."""
    rig.set_state(D1, "ALARM")
    stale = alarm_message(rig.alarm(D1), new_state="ALARM", old_state="OK", at=datetime.now(UTC) - timedelta(minutes=5))
    rig.set_state(D1, "OK")

    (result,) = rig.plane.on_alarm_event(sns_event([stale], topic_arn=UP_TOPIC), UP)

    assert result["wanted"] == 1 and rig.live("orders") == ["slot-0001"]


def test_a_notification_newer_than_what_cloudwatch_answers_wins(rig: PlaneRig) -> None:
    rig.set_state(D2, "ALARM")
    message = alarm_message(
        rig.alarm(D2), new_state="ALARM", old_state="OK", at=datetime.now(UTC) + timedelta(seconds=5)
    )
    rig.set_state(D2, "OK")  # CloudWatch lags the notification in hand (eventual consistency)
    (result,) = rig.plane.on_alarm_event(sns_event([message], topic_arn=UP_TOPIC), UP)
    assert result["wanted"] == 4


def test_alarms_of_another_deployment_are_ignored_with_a_log_line(rig: PlaneRig, loop_logs: Any) -> None:
    alarm = {**rig.alarm(D1), "AlarmName": "other-prod-orders-depth-1"}
    alarm["AlarmArn"] = alarm["AlarmArn"].replace(D1, "other-prod-orders-depth-1")
    event = sns_event([alarm_message(alarm, new_state="ALARM", old_state="OK")], topic_arn=UP_TOPIC)

    (result,) = rig.plane.on_alarm_event(event, UP)

    assert result["action"] == "ignored" and rig.rows("orders") == []
    (line,) = log_events(loop_logs, "alarm_ignored")
    assert "does not carry this deployment's prefix" in line["why"]


def test_dimensions_naming_another_queue_are_refused(rig: PlaneRig, loop_logs: Any) -> None:
    rig.set_state(D1, "ALARM")
    message = alarm_message(rig.alarm(D1), new_state="ALARM", old_state="OK")
    for metric in message["Trigger"]["Metrics"]:
        if "MetricStat" in metric:
            metric["MetricStat"]["Metric"]["Dimensions"] = [{"name": "QueueName", "value": "someone-else"}]

    (result,) = rig.plane.on_alarm_event(sns_event([message], topic_arn=UP_TOPIC), UP)

    assert result["action"] == "ignored" and rig.rows("orders") == []
    assert log_events(loop_logs, "alarm_dimension_mismatch")[0]["level"] == "error"


def test_direct_alarm_action_and_a_queue_given_by_url(rig: PlaneRig) -> None:
    rig.set_state(BILLING, "ALARM")
    event = alarm_action_event(
        rig.alarm(BILLING), new_state="ALARM", old_state="OK", at=datetime.now(UTC) + timedelta(seconds=1)
    )

    (result,) = rig.plane.on_alarm_event(event, UP)

    assert result["wanted"] == 3 and len(rig.live("billing")) == 3


def test_multi_record_sns_event_scales_each_queue(rig: PlaneRig) -> None:
    rig.set_state(D1, "ALARM")
    rig.set_state(BILLING, "ALARM")
    messages = [alarm_message(rig.alarm(n), new_state="ALARM", old_state="OK") for n in (D1, BILLING)]

    results = rig.plane.on_alarm_event(sns_event(messages, topic_arn=UP_TOPIC), UP)

    assert [r["queue"] for r in results] == ["orders", "billing"]
    assert (len(rig.live("orders")), len(rig.live("billing"))) == (2, 3)


def test_malformed_events_are_dropped_without_raising(rig: PlaneRig, loop_logs: Any) -> None:
    assert rig.plane.on_alarm_event({"hello": "world"}, UP)[0]["action"] == "dropped"
    assert rig.plane.on_alarm_event({"Records": [{"Sns": {"Message": "nope"}}]}, DOWN)[0]["action"] == "dropped"
    assert len(log_events(loop_logs, "alarm_event_dropped")) == 2


def test_aws_failures_raise_so_the_platform_retries(rig: PlaneRig) -> None:
    rig.tokens.model.delete_table()
    with pytest.raises(Exception, match=r"ResourceNotFound|Requested resource not found"):
        rig.plane.on_alarm_event(rig.notify(D1, "ALARM", "OK"), UP)


def atomic_requests(client: Any) -> None:
    """DynamoDB applies each conditional write atomically; moto's in-process backend does not when
    requests come from several threads. One request at a time restores the service's per-request
    atomicity while the callers' sequences of requests still interleave."""
    lock = threading.Lock()
    client.meta.events.register("before-call", lambda **_: lock.acquire() and None)
    client.meta.events.register("after-call", lambda **_: lock.release())
    client.meta.events.register("after-call-error", lambda **_: lock.release())


def test_concurrent_scale_ups_never_overshoot(rig: PlaneRig) -> None:
    atomic_requests(rig.tokens.model._get_connection().connection.client)
    rig.set_state(D1, "ALARM")
    rig.set_state(D2, "ALARM")
    events = [rig.notify(D2, "ALARM", "OK") for _ in range(6)]
    barrier = threading.Barrier(len(events))
    errors: list[BaseException] = []

    def scale(event: dict[str, Any]) -> None:
        barrier.wait()
        try:
            rig.plane.on_alarm_event(event, UP)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=scale, args=(e,)) for e in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert rig.live("orders") == ["slot-0001", "slot-0002", "slot-0003", "slot-0004"]
    assert len(rig.invoker.calls) == 4  # each new row's loop started exactly once


def test_scale_up_takes_back_a_retiring_row(rig: PlaneRig) -> None:
    rig.plane.on_alarm_event(rig.notify(D1, "ALARM", "OK"), UP)
    rig.plane.on_alarm_event(rig.notify(D1, "OK", "ALARM"), DOWN)
    assert [r.token for r in rig.rows("orders") if r.retiring] == ["slot-0002"]

    (result,) = rig.plane.on_alarm_event(rig.notify(D1, "ALARM", "OK"), UP)

    assert result["unretired"] == ["slot-0002"] and result["started"] == []
    assert rig.live("orders") == ["slot-0001", "slot-0002"]


def test_override_pins_pauses_and_resumes(rig: PlaneRig) -> None:
    orders = rig.config.queue("orders")
    rig.overrides.pin(orders, 1, now_ms=0, note="vendor incident")
    (pinned,) = rig.plane.on_alarm_event(rig.notify(D2, "ALARM", "OK"), UP)
    assert (pinned["wanted"], rig.live("orders")) == (1, ["slot-0001"])

    rig.overrides.pin(orders, 0, now_ms=1)  # pause
    rig.plane.on_alarm_event(rig.notify(D2, "OK", "ALARM"), DOWN)
    assert rig.live("orders") == []

    rig.overrides.clear("orders")  # resume: the alarms decide again
    (resumed,) = rig.plane.on_alarm_event(rig.notify(D2, "ALARM", "OK"), UP)
    assert resumed["wanted"] == 4 and len(rig.live("orders")) == 4


def test_override_outside_the_queue_limits_is_refused(rig: PlaneRig) -> None:
    from scaler.exceptions import OverrideError

    with pytest.raises(OverrideError, match=r"'orders': a pinned loop count is from 0 to max_loops \(6\), got 7"):
        rig.overrides.pin(rig.config.queue("orders"), 7, now_ms=0)


def test_started_loops_are_named_by_fresh_loop_ids(rig: PlaneRig) -> None:
    ids = iter(["a", "b"])
    rig.plane.reconciler.new_loop_id = lambda: next(ids)
    rig.plane.on_alarm_event(rig.notify(D1, "ALARM", "OK"), UP)
    assert [r.loop_id for r in rig.rows("orders")] == ["a", "b"]
