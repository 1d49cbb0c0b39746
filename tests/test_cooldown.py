"""The combined rule (alarms, depth, cool-down, pins) and the cool-down's memory: pure logic."""

from __future__ import annotations

import itertools

from poller.config import parse_config
from poller.config.scaling import depth_loops
from scaler.cooldown import held_loops, remember
from scaler.wanted import combined_loops, rule_loops

CONFIG = parse_config(
    """
queues:
  orders:
    queue: orders
    handler: app.orders.handle
    min_loops: 1
    max_loops: 6
    scale_in_cooldown_s: 60
    scale_steps: [{depth: 100, loops: 2}, {depth: 1000, loops: 4}]
  resting:
    queue: resting
    handler: app.orders.handle
    min_loops: 0
    max_loops: 3
    scale_steps: [{depth: 50, loops: 3}]
  bare:
    queue: bare
    handler: app.orders.handle
    min_loops: 0
"""
)
ORDERS, RESTING, BARE = (CONFIG.queue(k) for k in ("orders", "resting", "bare"))


def test_depth_rule_applies_the_same_steps_and_wakes_a_resting_queue() -> None:
    assert [depth_loops(ORDERS, d) for d in (0, 99, 100, 999, 1000, 10**6)] == [1, 1, 2, 2, 4, 4]
    # Fewer messages than the first step, or no steps at all: one loop, not stranded messages.
    assert [depth_loops(RESTING, d) for d in (0, 1, 49, 50)] == [0, 1, 1, 3]
    assert [depth_loops(BARE, d) for d in (0, 1, 10**6)] == [0, 1, 1]


def test_the_larger_of_alarms_depth_and_cool_down_wins_within_bounds() -> None:
    assert combined_loops(ORDERS, {1: "ALARM"}, 0) == 2  # an alarm still in ALARM after the queue drained
    assert combined_loops(ORDERS, {1: "OK"}, 1500) == 4  # CloudWatch behind: the depth read wins
    assert combined_loops(ORDERS, {}, 0, held=4) == 4  # the cool-down holds the step's loops
    assert combined_loops(ORDERS, {2: "ALARM"}, 5000, held=9) == 6  # never above max_loops
    # A failed read leaves the other reading to decide alone.
    assert combined_loops(ORDERS, None, 150) == 2 and combined_loops(ORDERS, {2: "ALARM"}, None) == 4
    assert rule_loops(RESTING, {}, 3) == 1


def test_a_pin_wins_over_depth_and_cool_down() -> None:
    assert combined_loops(ORDERS, {2: "ALARM"}, 5000, held=4, pinned=0) == 0


def test_a_step_is_held_for_a_cool_down_after_the_rule_last_wanted_it() -> None:
    seen: dict[int, int] = {}
    seen = remember(seen, 4, now_ms=0, cooldown_s=60, floor=1)
    seen = remember(seen, 2, now_ms=30_000, cooldown_s=60, floor=1)  # below step 2 now, above step 1
    assert held_loops(seen, now_ms=59_999, cooldown_s=60) == 4
    assert held_loops(seen, now_ms=60_000, cooldown_s=60) == 2  # step 2 was wanted at 30 s
    assert held_loops(seen, now_ms=90_000, cooldown_s=60) == 0


def test_wanting_more_refreshes_every_lower_count() -> None:
    seen = remember({2: 0}, 4, now_ms=50_000, cooldown_s=60, floor=1)
    assert seen == {2: 50_000, 4: 50_000}  # it was above step 2 all along


def test_the_floor_and_old_entries_are_not_kept() -> None:
    assert remember({}, 1, now_ms=0, cooldown_s=60, floor=1) == {}  # a resting queue writes nothing
    assert remember({3: 0}, 0, now_ms=61_000, cooldown_s=60, floor=0) == {}


def test_a_hovering_queue_changes_its_count_at_most_once_per_cool_down() -> None:
    """Depth alternating around step 1 every 5 s for 10 minutes: the count rises once and stays."""
    seen: dict[int, int] = {}
    counts = []
    for n in range(120):
        now = n * 5_000
        depth = 120 if n % 2 else 80
        rule = rule_loops(ORDERS, {}, depth)
        held = held_loops(seen, now_ms=now, cooldown_s=ORDERS.scale_in_cooldown_s)
        counts.append(combined_loops(ORDERS, {}, depth, held=held))
        seen = remember(seen, rule, now_ms=now, cooldown_s=ORDERS.scale_in_cooldown_s, floor=ORDERS.min_loops)
    changes = sum(a != b for a, b in itertools.pairwise(counts))
    assert counts[0] == 1 and changes == 1 and counts[-1] == 2


def test_cool_down_is_a_queue_key_with_a_default() -> None:
    assert CONFIG.queue("resting").scale_in_cooldown_s == 300 and ORDERS.scale_in_cooldown_s == 60
