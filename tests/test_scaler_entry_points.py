"""``scaler.handlers`` as Lambda calls them: environment, config file, real clients on moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ACCOUNT, REGION, FakeContext, capture_invokes, create_function
from scaler_rig import CONFIG, POLLER, PREFIX, UP_TOPIC, build_plane, url_of

from poller.exceptions import ConfigError
from poller.lease.tokens import TokenStore
from scaler import handlers
from testing.events import alarm_message, sns_event

RESTART_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{PREFIX}-restart"


@pytest.fixture
def env(tokens: TokenStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    config = tmp_path / "queues.yml"
    config.write_text(CONFIG)
    for name, value in {
        "SQS_LOOPS_CONFIG": str(config),
        "LOOPS_TABLE": tokens.model.Meta.table_name,
        "LOOPS_PREFIX": PREFIX,
        "POLLER_FUNCTION": POLLER,
    }.items():
        monkeypatch.setenv(name, value)
    create_function(POLLER)
    handlers.control_plane.cache_clear()
    yield
    handlers.control_plane.cache_clear()


def test_scale_up_from_an_sns_notification_starts_loops(env: None, tokens: TokenStore) -> None:
    rig = build_plane(tokens)  # alarms as the deployment makes them
    invokes = capture_invokes(handlers.control_plane().reconciler.invoker.client)  # type: ignore[attr-defined]
    rig.set_state(f"{PREFIX}-orders-depth-1", "ALARM")
    message = alarm_message(rig.alarm(f"{PREFIX}-orders-depth-1"), new_state="ALARM", old_state="OK")

    (result,) = handlers.scale_up(sns_event([message], topic_arn=UP_TOPIC), FakeContext(30))

    assert result["started"] == ["slot-0001", "slot-0002"]
    assert [json.loads(i["body"])["token"] for i in invokes] == ["slot-0001", "slot-0002"]
    assert all(i["headers"]["X-Amz-Invocation-Type"] == "Event" for i in invokes)


def test_scale_down_ignores_garbage(env: None, tokens: TokenStore) -> None:
    build_plane(tokens)
    assert handlers.scale_down({"Records": [{"Sns": {"Message": "{}"}}]}, FakeContext(30))[0]["action"] == "dropped"


def test_restart_names_queues_in_its_own_account(env: None, tokens: TokenStore) -> None:
    build_plane(tokens)
    report = handlers.restart({"source": "aws.events"}, FakeContext(30, arn=RESTART_ARN))
    assert report["orders"]["started"] == ["slot-0001"]
    assert [r.token for r in tokens.tokens_of(url_of("orders"))] == ["slot-0001"]


def test_missing_environment_is_named(env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOPS_PREFIX")
    with pytest.raises(ConfigError, match="LOOPS_PREFIX is not set"):
        handlers.restart({}, FakeContext(30, arn=RESTART_ARN))
