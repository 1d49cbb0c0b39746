"""Config loading: defaults, the SQS_LOOPS_CONFIG switch, and an error naming file, field and expectation
for every kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FakeContext

import producer
from poller.config import Config, PollerSettings, RetryBackoff, ScaleStep, config_path, load_config, parse_config
from poller.exceptions import ConfigError, UnknownQueue

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
poller: {timeout_s: 300, heartbeat_s: 30}
defaults:
  max_loops: 5
  handler: app.shared.handle
queues:
  orders:
    queue: orders-prod
    handler: app.orders.handle
    min_loops: 2
    scale_steps:
      - {depth: 100, loops: 3}
      - {depth: 1000, loops: 5}
  billing:
    queue: https://sqs.eu-west-1.amazonaws.com/210987654321/billing.fifo
"""


def test_repository_config_loads() -> None:
    config = load_config(ROOT / "queues.yml")
    orders = config.queue("orders")
    assert orders.scale_steps == (ScaleStep(100, 2), ScaleStep(1000, 4))
    assert config.poller == PollerSettings(timeout_s=900, heartbeat_s=75)


def test_defaults_fill_queues_and_queue_keys_win() -> None:
    config = parse_config(GOOD)
    orders, billing = config.queue("orders"), config.queue("billing")
    assert (orders.handler, orders.min_loops, orders.max_loops) == ("app.orders.handle", 2, 5)
    assert (billing.handler, billing.min_loops, billing.max_loops) == ("app.shared.handle", 1, 5)
    assert (billing.batch_size, billing.wait_time_s, billing.visibility_timeout_s) == (10, 20, 30)
    assert list(config.queues) == ["orders", "billing"]


def test_config_is_frozen() -> None:
    config = parse_config(GOOD)
    with pytest.raises(AttributeError):
        config.queue("orders").max_loops = 50  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.queues["x"] = config.queue("orders")  # type: ignore[index]


def test_queue_urls_by_name_and_by_url() -> None:
    config = parse_config(GOOD)
    orders, billing = config.queue("orders"), config.queue("billing")
    assert orders.queue_url(region="us-east-2", account_id="123456789012") == (
        "https://sqs.us-east-2.amazonaws.com/123456789012/orders-prod"
    )
    assert billing.queue_url(region="us-east-2", account_id="1") == billing.queue
    assert config.queue_for_url("http://localhost:5000/123456789012/orders-prod") is orders
    assert config.queue_for_url("https://SQS.eu-west-1.amazonaws.com/210987654321/billing.fifo/") is billing
    with pytest.raises(UnknownQueue, match="matches no queue"):
        config.queue_for_url("https://sqs.eu-west-1.amazonaws.com/999999999999/billing.fifo")
    with pytest.raises(UnknownQueue):
        config.queue("nope")


def test_stale_threshold_covers_heartbeat_longest_poll_and_margin() -> None:
    config = parse_config(GOOD)  # heartbeat 30, polls of 20 s, margin 20 by default
    assert config.stale_after_s == 30 + 20 + 20
    short = parse_config(
        "poller: {heartbeat_s: 2, lease_margin_s: 1}\nqueues:\n  a: {queue: q, handler: m.h, wait_time_s: 2}\n"
    )
    assert short.stale_after_s == 5


def test_sqs_loops_config_names_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other.yml"
    other.write_text(GOOD)
    monkeypatch.setenv("SQS_LOOPS_CONFIG", str(other))
    assert config_path() == other
    assert isinstance(load_config(), Config)
    assert load_config().path == str(other)
    monkeypatch.delenv("SQS_LOOPS_CONFIG")
    assert config_path() == Path("queues.yml")


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yml: cannot read the config file"):
        load_config(tmp_path / "nope.yml")


QUEUE = "queues:\n  orders:\n    queue: orders\n    handler: app.h\n"

BAD = [
    ("queues: [unclosed", r"not valid YAML at line 1"),
    ("", r"queues: the file is empty"),
    ("queues: {}", r"queues: expected a mapping of queue key to queue"),
    ("- a\n- b", r"\(top level\): expected a mapping"),
    ("queus: {}", r"queus: unknown key; expected one of defaults, downstreams, poller, queues"),
    (QUEUE + "    max_loop: 3\n", r"queues\.orders\.max_loop: unknown key"),
    (QUEUE + "    max_loops: ten\n", r"queues\.orders\.max_loops: expected an integer >= 1, got 'ten'"),
    (QUEUE + "    max_loops: true\n", r"queues\.orders\.max_loops: expected an integer >= 1, got True"),
    (QUEUE + "    max_loops: 0\n", r"queues\.orders\.max_loops: expected an integer >= 1, got 0"),
    (QUEUE + "    min_loops: 4\n    max_loops: 3\n", r"queues\.orders\.min_loops: must not exceed max_loops \(3\)"),
    (QUEUE + "    batch_size: 11\n", r"queues\.orders\.batch_size: expected an integer from 1 to 10, got 11"),
    (QUEUE + "    wait_time_s: 21\n", r"queues\.orders\.wait_time_s: expected an integer from 1 to 20"),
    (QUEUE + "    visibility_timeout_s: 2\n", r"visibility_timeout_s: expected an integer from 3 to 43200"),
    (
        QUEUE + "    scale_in_cooldown_s: -1\n",
        r"queues\.orders\.scale_in_cooldown_s: expected an integer from 0 to 86400",
    ),
    ("poller: {depth_reads: sometimes}\n" + QUEUE, r"poller\.depth_reads: expected true or false, got 'sometimes'"),
    ("poller: {limit_cap: 1}\n" + QUEUE, r"poller\.limit_cap: expected true or false, got 1"),
    (
        QUEUE + "    handler_timeout_s: 890\n",
        r"handler_timeout_s: wait_time_s \(20\) \+ a batch's budget \(890 s: handler_timeout_s 890",
    ),
    (
        "queues:\n  orders:\n    queue: orders\n    http: https://x.example\n    handler_timeout_s: 875\n",
        r"handler_timeout_s: wait_time_s \(20\) \+ a batch's budget \(878.05 s: handler_timeout_s 875",
    ),
    (QUEUE + "    scale_steps: {depth: 1}\n", r"scale_steps: expected a list"),
    (QUEUE + "    scale_steps: [{depth: 5}]\n", r"scale_steps\[0\]\.loops: missing"),
    (QUEUE + "    scale_steps: [{depth: 5, loops: 2, x: 1}]\n", r"scale_steps\[0\]\.x: unknown key"),
    (
        QUEUE + "    scale_steps: [{depth: 5, loops: 11}]\n",
        r"scale_steps\[0\]\.loops: expected an integer from 1 to 10",
    ),
    (
        QUEUE + "    scale_steps: [{depth: 50, loops: 2}, {depth: 50, loops: 3}]\n",
        r"scale_steps\[1\]\.depth: steps must be in ascending depth; 50 follows 50",
    ),
    (
        QUEUE + "    scale_steps: [{depth: 5, loops: 3}, {depth: 50, loops: 2}]\n",
        r"scale_steps\[1\]\.loops: a deeper step cannot want fewer loops",
    ),
    ("queues:\n  orders:\n    handler: app.h\n", r"queues\.orders\.queue: expected an SQS queue name"),
    ("queues:\n  orders:\n    queue: 'bad name'\n    handler: app.h\n", r"queues\.orders\.queue: expected"),
    ("queues:\n  orders:\n    queue: https://sqs.x.amazonaws.com/orders\n    handler: app.h\n", r"\.queue: expected"),
    ("queues:\n  orders:\n    queue: q\n    handler: handle\n", r"queues\.orders\.handler: expected a dotted path"),
    ("queues:\n  orders:\n    queue: q\n", r"queues\.orders\.handler: expected a dotted path.*got None"),
    ("queues:\n  'bad key!':\n    queue: q\n    handler: a.b\n", r"queues\.bad key!: a queue key is"),
    ("queues:\n  orders: 5\n", r"queues\.orders: expected a mapping, got 5"),
    ("defaults: {queue: q}\n" + QUEUE, r"defaults\.queue: unknown key"),
    ("poller: {timeout_s: 901}\n" + QUEUE, r"poller\.timeout_s: expected an integer from 1 to 900"),
    ("poller: {heartbeat_s: 900}\n" + QUEUE, r"poller\.heartbeat_s: must be below poller\.timeout_s"),
    (
        "poller: {heartbeat_s: 60, lease_margin_s: 5}\n" + QUEUE,
        r"poller\.lease_margin_s: must be at least the keeper interval \(10 s\)",
    ),
    (
        QUEUE + "  again:\n    queue: orders\n    handler: app.h\n",
        r"queues\.again\.queue: 'orders' is already the queue",
    ),
    # downstream protection (docs/downstream.md)
    (
        QUEUE + "    function: billing\n",
        r"queues\.orders\.function: a queue has exactly one target; it already has 'handler'",
    ),
    (
        "queues:\n  orders:\n    queue: q\n    function: 'no good'\n",
        r"queues\.orders\.function: expected a Lambda function name",
    ),
    (
        "queues:\n  orders:\n    queue: q\n    http: ftp://x\n",
        r"queues\.orders\.http: expected an http:// or https:// URL",
    ),
    (
        "queues:\n  orders:\n    queue: q\n    http: {url: 'http://x', per: each}\n",
        r"orders\.http\.per: expected one of record, batch",
    ),
    (
        "queues:\n  orders:\n    queue: q\n    http: {url: 'http://x', timeout_s: 0}\n",
        r"orders\.http\.timeout_s: expected seconds > 0",
    ),
    (
        "queues:\n  orders:\n    queue: q\n    http: {url: 'http://x', timeout_s: 61}\n",
        r"at most handler_timeout_s \(60\)",
    ),
    ("queues:\n  orders:\n    queue: q\n    http: {url: 'http://x', verb: PUT}\n", r"orders\.http\.verb: unknown key"),
    (
        "queues:\n  orders:\n    queue: q\n    http: {url: 'http://x', headers: {a: 1}}\n",
        r"orders\.http\.headers: expected a mapping",
    ),
    (
        "queues:\n  orders:\n    queue: q\n    concurrency: 2\n    http: {url: 'http://x', per: batch}\n",
        r"orders\.concurrency: http per: batch sends the batch in one request",
    ),
    (
        "queues:\n  o:\n    queue: o.fifo\n    handler: a.b\n    concurrency: 2\n",
        r"queues\.o\.concurrency: must be 1 on a FIFO",
    ),
    (QUEUE + "    rate_limit: 0\n", r"queues\.orders\.rate_limit: expected messages a second > 0, got 0"),
    (QUEUE + "    rate_limit: fast\n", r"queues\.orders\.rate_limit: expected messages a second > 0"),
    (
        "queues:\n  orders:\n    queue: orders-prod\n    http: {url: 'https://x.example', headers: {X-Team: \"\u20acuro\"}}\n",
        r"queues\.orders\.http\.headers\.X-Team: expected Latin-1 text without line breaks",
    ),
    (
        "queues:\n  orders:\n    queue: orders-prod\n    http: {url: 'https://x.example', headers: {'X Team': a}}\n",
        r"queues\.orders\.http\.headers: 'X Team' is not an HTTP header name",
    ),
    (QUEUE + "    rate_limit: .inf\n", r"queues\.orders\.rate_limit: expected messages a second > 0, got inf"),
    (QUEUE + "    downstream: vendor\n", r"queues\.orders\.downstream: unknown downstream 'vendor'"),
    (
        "downstreams:\n  vendor: {rate_limit: 5}\n" + QUEUE + "    downstream: other\n",
        r"queues\.orders\.downstream: unknown downstream 'other' \(vendor\)",
    ),
    (QUEUE + "    weight: 0\n", r"queues\.orders\.weight: expected a number > 0, got 0"),
    (QUEUE + "    weight: -2\n", r"queues\.orders\.weight: expected a number > 0"),
    (QUEUE + "    priority: high\n", r"queues\.orders\.priority: expected an integer"),
    ("downstreams:\n  vendor: {}\n" + QUEUE, r"downstreams\.vendor\.rate_limit: missing"),
    (
        "downstreams:\n  vendor: {rate_limit: 0}\n" + QUEUE,
        r"downstreams\.vendor\.rate_limit: expected messages a second > 0",
    ),
    ("downstreams:\n  vendor: {rate_limit: 5, burst: 2}\n" + QUEUE, r"downstreams\.vendor\.burst: unknown key"),
    (
        "downstreams:\n  vendor: {rate_limit: 5, max_in_flight: 0}\n" + QUEUE,
        r"downstreams\.vendor\.max_in_flight: expected an integer >= 1",
    ),
    (
        "downstreams:\n  vendor: {rate_limit: 5, max_in_flight: 3}\n"
        + QUEUE
        + "    downstream: vendor\n    max_loops: 4\n",
        r"downstreams\.vendor\.max_in_flight: 3 cannot give each of its queues' 4 loops",
    ),
    ("downstreams: [a]\n" + QUEUE, r"downstreams: expected a mapping"),
    (QUEUE + "    concurrency: 11\n", r"queues\.orders\.concurrency: expected an integer from 1 to 10"),
    (
        QUEUE + "    batch_size: 4\n    concurrency: 5\n",
        r"queues\.orders\.concurrency: expected an integer from 1 to 4",
    ),
    (QUEUE + "    retry_backoff: {base_s: 0}\n", r"orders\.retry_backoff\.base_s: expected an integer from 1 to 43200"),
    (
        QUEUE + "    retry_backoff: {base_s: 10, max_s: 5}\n",
        r"orders\.retry_backoff\.max_s: expected an integer from 10 to 43200",
    ),
    (
        QUEUE + "    retry_backoff: {max_s: 50000}\n",
        r"orders\.retry_backoff\.max_s: expected an integer from 5 to 43200, got 50000",
    ),
    (QUEUE + "    retry_backoff: {factor: 2}\n", r"orders\.retry_backoff\.factor: unknown key"),
    (
        QUEUE + "    sends_to: items\n",
        r"queues\.orders\.sends_to: expected a list of queue keys of this file, got 'items'",
    ),
    (
        QUEUE + "    sends_to: [itemz]\n",
        r"queues\.orders\.sends_to: 'itemz' is not a queue of this file \(its queues: orders\)",
    ),
]


def test_downstream_keys_parse_with_their_defaults() -> None:
    config = parse_config(
        """
defaults:
  handler: app.shared.handle
  rate_limit: 50
  max_loops: 5
queues:
  vendor:
    queue: vendor-jobs
    http: https://api.example.com/v1/jobs
    concurrency: 4
    retry_backoff: true
  billing:
    queue: billing
    function: arn:aws:lambda:eu-west-1:210987654321:function:billing-worker:live
    batch_size: 10
  plain:
    queue: plain
    rate_limit: null
"""
    )
    vendor, billing, plain = config.queue("vendor"), config.queue("billing"), config.queue("plain")
    # A queue that names its own target replaces the defaults' handler instead of clashing with it.
    assert (vendor.handler, vendor.http, vendor.function) == (None, vendor.http, None) and vendor.http is not None
    assert (vendor.http.url, vendor.http.per, vendor.http.timeout_s) == (
        "https://api.example.com/v1/jobs",
        "record",
        10,
    )
    assert vendor.per_record and vendor.target == "http:https://api.example.com/v1/jobs"
    assert vendor.retry_backoff == RetryBackoff(base_s=5, max_s=900)
    assert (billing.handler, billing.rate_limit, billing.per_record) == (None, 50.0, False)
    # its own rate_limit runs as a private downstream of its own
    assert [(d.name, d.rate_limit) for d in billing.limits] == [("queue:billing", 50.0)]
    assert (plain.handler, plain.rate_limit, plain.concurrency, plain.retry_backoff) == (
        "app.shared.handle",
        None,
        1,
        None,
    )
    assert plain.limits == ()
    assert RetryBackoff(base_s=5, max_s=300).ceiling_s(3) == 20 and RetryBackoff(1, 43200).ceiling_s(10**6) == 43200


def test_shared_downstream_keys_parse() -> None:
    config = parse_config(
        """
downstreams:
  vendor: {rate_limit: 2, max_in_flight: 20}
queues:
  groups: {queue: groups, handler: app.a.b, downstream: vendor, max_loops: 8}
  items: {queue: items, handler: app.a.b, downstream: vendor, weight: 3, priority: 1, max_loops: 2, rate_limit: 1}
  other: {queue: other, handler: app.a.b}
"""
    )
    groups, items, other = config.queue("groups"), config.queue("items"), config.queue("other")
    # a vendor that allows 2 calls a second behind 8 loops loads: no rule ties a rate to max_loops
    assert (groups.downstream, groups.weight, groups.priority) == ("vendor", 1.0, 0)
    assert (items.weight, items.priority) == (3.0, 1)
    assert [d.name for d in items.limits] == ["vendor", "queue:items"]  # both hold: the tighter wins
    assert groups.shared is not None and groups.shared.in_flight_per_loop == 2  # 20 over 10 loops
    assert other.limits == () and config.downstreams["vendor"].rate_limit == 2.0


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_config_names_the_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_config(text, source="my.yml")
    assert str(caught.value).startswith("my.yml: ")


def test_sends_to_names_queues_of_the_file_once_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = QUEUE + "    sends_to: [items, items]\n  items:\n    queue: items-prod\n    handler: app.h\n"
    config = parse_config(text)
    assert config.queues["orders"].sends_to == ("items",) and config.queues["items"].sends_to == ()
    # In the handler: the queue's URL by its key, in the function's account and region (no AWS call).
    (tmp_path / "queues.yml").write_text(text)
    monkeypatch.setenv("SQS_LOOPS_CONFIG", str(tmp_path / "queues.yml"))
    context = FakeContext(10, arn="arn:aws:lambda:eu-west-1:210987654321:function:p-poller")
    assert producer.queue_url("items", context) == "https://sqs.eu-west-1.amazonaws.com/210987654321/items-prod"
    with pytest.raises(UnknownQueue, match="no queue with key 'itemz'"):
        producer.queue_url("itemz", context)
    with pytest.raises(producer.BadSend, match="the context has no function ARN"):
        producer.queue_url("items", None)
