"""On moto: restart and scale_up read queue depths themselves; the cool-down keeps loops until the depth
has stayed low; a loop's growth request is only a reason to look (docs/scaling.md#two-paths)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import boto3
import pytest
import sample_handlers
from conftest import ACCOUNT, REGION, FakeClock, FakeContext, log_events, send
from scaler_rig import PREFIX, PlaneRig, build_plane, url_of

from poller.growth_request import GROWTH_SOURCE, growth_request
from poller.lease.tokens import TokenStore
from poller.loop import Loop
from poller.loop.growth import GROWTH_CHECK_S
from scaler.alarms.names import depth_alarm_name
from scaler.control import UP

COOLDOWN_S = 300  # the default scale_in_cooldown_s


@pytest.fixture
def rig(tokens: TokenStore, clock: FakeClock) -> PlaneRig:
    return build_plane(tokens, clock, reads=True)


@pytest.fixture
def sqs_client(rig: PlaneRig) -> Any:
    return boto3.client("sqs", region_name=REGION)


def restart(rig: PlaneRig) -> dict[str, Any]:
    return rig.plane.restart(region=REGION, account_id=ACCOUNT)


def drain(sqs: Any, url: str) -> None:
    sqs.purge_queue(QueueUrl=url)


def grow(rig: PlaneRig, event: Any) -> list[dict[str, Any]]:
    return rig.plane.on_alarm_event(event, UP, region=REGION, account_id=ACCOUNT)


def test_restart_wakes_a_resting_queue_below_its_first_step(rig: PlaneRig, sqs_client: Any) -> None:
    assert restart(rig)["billing"]["wanted"] == 0 and rig.live("billing") == []
    send(sqs_client, url_of("billing"), ["a", "b", "c"])  # under the step's depth of 10: no alarm would fire
    report = restart(rig)
    assert report["billing"]["depth"] == 3 and rig.live("billing") == ["slot-0001"]


def test_restart_grows_from_the_depth_while_the_alarms_have_no_data(rig: PlaneRig, sqs_client: Any) -> None:
    send(sqs_client, url_of("orders"), [str(n) for n in range(120)])  # past step 1 (100): 2 loops
    report = restart(rig)
    assert report["orders"]["depth"] == 120 and rig.live("orders") == ["slot-0001", "slot-0002"]


def test_loops_leave_only_after_the_depth_stayed_low_for_the_cool_down(
    rig: PlaneRig, sqs_client: Any, clock: FakeClock
) -> None:
    send(sqs_client, url_of("orders"), [str(n) for n in range(120)])
    send(sqs_client, url_of("billing"), ["x"])
    restart(rig)
    drain(sqs_client, url_of("orders"))
    drain(sqs_client, url_of("billing"))
    for _ in range(4):  # four minutes of restarts on empty queues: everything stays
        clock.advance(60)
        restart(rig)
    assert len(rig.live("orders")) == 2 and rig.live("billing") == ["slot-0001"]
    clock.advance(COOLDOWN_S - 4 * 60)
    restart(rig)
    assert rig.live("orders") == ["slot-0001"]  # back to min_loops
    assert rig.live("billing") == []  # min_loops 0: back to rest


def test_an_alarms_ok_never_goes_below_what_the_depth_wants(rig: PlaneRig, sqs_client: Any, clock: FakeClock) -> None:
    send(sqs_client, url_of("orders"), [str(n) for n in range(120)])
    name = depth_alarm_name(PREFIX, "orders", 1)
    rig.plane.on_alarm_event(rig.notify(name, "ALARM", "INSUFFICIENT_DATA"), UP)
    assert len(rig.live("orders")) == 2
    clock.advance(COOLDOWN_S + 1)  # long past the cool-down: only the depth keeps the loops now
    result = rig.plane.on_alarm_event(rig.notify(name, "OK", "ALARM"), "down")
    assert result[0]["wanted"] == 2 and len(rig.live("orders")) == 2


def test_a_growth_request_is_checked_against_the_depth(rig: PlaneRig, sqs_client: Any) -> None:
    url = url_of("billing")
    send(sqs_client, url, ["a", "b"])
    # It claims a deep queue; the depth read says 2 messages: one loop (the step wants 10 for 3).
    lying = growth_request(url, loop_id="L", depth=10_000, wanted=3)
    assert grow(rig, lying)[0]["wanted"] == 1 and rig.live("billing") == ["slot-0001"]
    started = len(rig.invoker.calls)
    assert grow(rig, lying)[0]["started"] == [] and len(rig.invoker.calls) == started  # a duplicate: nothing
    send(sqs_client, url, [str(n) for n in range(10)])
    assert grow(rig, growth_request(url, loop_id="L", depth=12, wanted=3))[0]["wanted"] == 3
    assert len(rig.live("billing")) == 3


def test_a_bogus_growth_request_changes_nothing(rig: PlaneRig, sqs_client: Any, loop_logs: Any) -> None:
    foreign = growth_request(f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/not-ours", loop_id="L", depth=9, wanted=9)
    assert grow(rig, foreign)[0]["action"] == "dropped"
    assert grow(rig, {**foreign, "queue_url": None})[0]["action"] == "dropped"
    # billing is configured by URL: the same name in another account is not ours.
    other = growth_request("https://sqs.eu-west-1.amazonaws.com/999999999999/billing", loop_id="L", depth=9, wanted=9)
    assert grow(rig, other)[0]["action"] == "dropped"
    # scale_down never grows.
    request = growth_request(url_of("billing"), loop_id="L", depth=9, wanted=9)
    assert rig.plane.on_alarm_event(request, "down")[0]["action"] == "dropped"
    assert rig.rows("billing") == [] and rig.invoker.calls == []
    assert len(log_events(loop_logs, "growth_request_dropped")) == 4


def test_restart_reads_many_queues_at_once(tokens: TokenStore, clock: FakeClock) -> None:
    queues = "\n".join(
        f"  q{n}:\n    queue: q{n}\n    handler: app.h.handle\n    min_loops: 0\n    max_loops: 2" for n in range(40)
    )
    rig = build_plane(tokens, clock, f"queues:\n{queues}\n", reads=True)
    sqs = boto3.client("sqs", region_name=REGION)
    for n in range(0, 40, 2):
        sqs.send_message(QueueUrl=f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/q{n}", MessageBody="x")
    report = rig.plane.restart(region=REGION, account_id=ACCOUNT)
    assert [key for key, q in report.items() if q["wanted"]] == [f"q{n}" for n in range(0, 40, 2)]
    assert {q["depth"] for q in report.values()} == {0, 1}


def test_a_resting_queue_costs_no_gauges_and_no_writes(rig: PlaneRig, loop_logs: Any) -> None:
    restart(rig)
    billing = [line for line in log_events(loop_logs, "reconciled") if line["queue"] == "billing"]
    assert billing and all("LiveLoops" not in line and "WantedLoops" not in line for line in billing)
    assert rig.plane.holds is not None and rig.plane.holds.all() == {}


def test_the_gauges_go_to_zero_once_when_a_queue_goes_back_to_rest(
    rig: PlaneRig, sqs_client: Any, clock: FakeClock, loop_logs: Any
) -> None:
    send(sqs_client, url_of("billing"), ["x"])
    restart(rig)
    drain(sqs_client, url_of("billing"))
    for _ in range(3):
        clock.advance(COOLDOWN_S)
        restart(rig)
    lines = [line for line in log_events(loop_logs, "reconciled") if line["queue"] == "billing"]
    assert [line.get("LiveLoops") for line in lines] == [1, 0, None, None]


def _run_deep_loop(rig_factory: Any, sqs: Any, clock: FakeClock, *, other_loops: int) -> list[dict[str, Any]]:
    """One loop step on a queue 150 deep whose step wants 3 loops; each batch takes half a check interval.
    Returns the growth requests it sent."""
    sample_handlers.use(lambda event, context: clock.advance(GROWTH_CHECK_S / 2))
    loop = rig_factory(clock=clock, min_loops=0, max_loops=3, scale_steps=[{"depth": 40, "loops": 3}])
    send(sqs, loop.url, [str(n) for n in range(150)])
    step = loop.create_token()
    for n in range(other_loops):
        loop.tokens.create(loop.url, f"slot-{n + 2}", loop_id=f"other-{n}", now_ms=0)
    services = replace(loop.services(), scale_up_function="scale-up-fn")
    queue = loop.config.queue("work")
    context = FakeContext(4 * GROWTH_CHECK_S, clock)  # 8 batches of 10: the queue never runs dry
    Loop(step, queue=queue, settings=loop.config.poller, services=services, context=context, function="poller").run()
    assert len(sample_handlers.seen) >= 40  # it did work through full batches
    return [payload for function, payload in loop.invoker.calls if function == "scale-up-fn"]


def test_a_loop_on_a_deep_queue_asks_scale_up_once(rig_factory: Any, sqs: Any, clock: FakeClock) -> None:
    requests = _run_deep_loop(rig_factory, sqs, clock, other_loops=0)
    assert len(requests) == 1  # one ask per wanted count and invocation, however many checks follow
    assert requests[0]["source"] == GROWTH_SOURCE and requests[0]["wanted"] == 3
    assert requests[0]["queue_url"].endswith("/work-queue")


def test_a_loop_whose_queue_has_its_loops_asks_nothing(rig_factory: Any, sqs: Any, clock: FakeClock) -> None:
    assert _run_deep_loop(rig_factory, sqs, clock, other_loops=2) == []
