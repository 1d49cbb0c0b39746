"""The scaling rule, as a table and as a property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from poller.config import Config, QueueConfig, ScaleStep, parse_config
from scaler.alarms.names import depth_alarm_name, parse_depth_alarm
from scaler.exceptions import ForeignAlarm
from scaler.wanted import wanted_loops

QUEUE = QueueConfig(
    key="orders",
    queue="orders",
    handler="a.b",
    min_loops=1,
    max_loops=8,
    scale_steps=(ScaleStep(100, 2), ScaleStep(1000, 4)),
)


def two_step_config() -> Config:
    return parse_config(
        "queues:\n  orders-eu:\n    queue: orders\n    handler: a.b\n"
        "    scale_steps: [{depth: 10, loops: 2}, {depth: 100, loops: 3}]\n"
    )


@pytest.mark.parametrize(
    ("states", "pinned", "wanted"),
    [
        ({}, None, 1),
        ({1: "OK", 2: "OK"}, None, 1),
        ({1: "INSUFFICIENT_DATA"}, None, 1),
        ({1: "ALARM"}, None, 2),
        ({1: "ALARM", 2: "ALARM"}, None, 4),
        ({1: "OK", 2: "ALARM"}, None, 4),  # the highest step in ALARM decides
        ({1: "ALARM", 2: "ALARM"}, 0, 0),  # paused
        ({}, 7, 7),  # pinned
    ],
)
def test_wanted_loops(states: dict[int, str], pinned: int | None, wanted: int) -> None:
    assert wanted_loops(QUEUE, states, pinned) == wanted


@given(st.dictionaries(st.integers(1, 2), st.sampled_from(["OK", "ALARM", "INSUFFICIENT_DATA"])))
def test_wanted_is_always_within_min_and_max(states: dict[int, str]) -> None:
    assert QUEUE.min_loops <= wanted_loops(QUEUE, states) <= QUEUE.max_loops


def test_alarm_names_round_trip_and_foreign_ones_are_refused() -> None:
    config = two_step_config()
    name = depth_alarm_name("svc-prod", "orders-eu", 2)
    assert name == "svc-prod-orders-eu-depth-2"
    alarm = parse_depth_alarm(name, prefix="svc-prod", config=config)
    assert (alarm.queue.key, alarm.step) == ("orders-eu", 2)
    for foreign, why in [
        ("other-prod-orders-eu-depth-1", "does not carry this deployment's prefix"),
        ("svc-prod-orders-eu-dlq", "is not named"),
        ("svc-prod-nope-depth-1", "not in"),
        ("svc-prod-orders-eu-depth-3", "has 2 scale steps, not 3"),
    ]:
        with pytest.raises(ForeignAlarm, match=why):
            parse_depth_alarm(foreign, prefix="svc-prod", config=config)
