"""Regions, partitions, accounts and keys: what a queue elsewhere gets (refused, or served), and the config
keys of the deployment's AWS side (``kms_key``, ``poller.log_level``, ``poller.reserved_concurrency``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from poller.aws.arn import dns_suffix_of, partition_of
from poller.config import load_config, parse_config
from poller.exceptions import ConfigError
from poller.sqs.queue_ref import QueueRef
from poller.sqs.records import queue_arn

OTHER_ACCOUNT = "https://sqs.us-east-1.amazonaws.com/210987654321/billing"


@pytest.mark.parametrize(
    ("region", "partition", "suffix"),
    [
        ("us-east-1", "aws", "amazonaws.com"),
        ("eu-central-2", "aws", "amazonaws.com"),
        ("cn-north-1", "aws-cn", "amazonaws.com.cn"),
        ("us-gov-west-1", "aws-us-gov", "amazonaws.com"),
        ("us-iso-east-1", "aws-iso", "c2s.ic.gov"),
        ("us-isob-east-1", "aws-iso-b", "sc2s.sgov.gov"),
    ],
)
def test_partition_and_dns_suffix_come_from_the_region(region: str, partition: str, suffix: str) -> None:
    assert (partition_of(region), dns_suffix_of(region)) == (partition, suffix)
    ref = QueueRef.parse("orders")
    assert ref.url_in(region=region, account_id="111111111111") == f"https://sqs.{region}.{suffix}/111111111111/orders"
    assert ref.arn_in(region=region, account_id="111111111111") == f"arn:{partition}:sqs:{region}:111111111111:orders"


def test_a_china_queue_url_is_read_with_its_region_and_its_event_arn_names_the_china_partition() -> None:
    url = "https://sqs.cn-northwest-1.amazonaws.com.cn/111111111111/orders"
    ref = QueueRef.parse(url)
    assert (ref.name, ref.region, ref.account) == ("orders", "cn-northwest-1", "111111111111")
    assert queue_arn(url, "cn-northwest-1") == "arn:aws-cn:sqs:cn-northwest-1:111111111111:orders"
    legacy = QueueRef.parse("https://us-gov-west-1.queue.amazonaws.com/111111111111/orders")
    assert legacy.region == "us-gov-west-1"


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "queues.yml"
    path.write_text("queues:\n  orders:\n    handler: app.h\n" + body)
    return path


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (
            "    queue: https://sqs.eu-west-1.amazonaws.com/210987654321/billing\n",
            "queues.orders.queue: the queue is in eu-west-1",
        ),
        (
            "    queue: orders\n    dlq: https://sqs.eu-west-1.amazonaws.com/111111111111/orders-dlq\n",
            "queues.orders.dlq: the queue is in eu-west-1",
        ),
        (
            "    queue: orders\n    kms_key: arn:aws:kms:eu-west-1:111111111111:key/abc-123\n",
            "queues.orders.kms_key: the key is in eu-west-1",
        ),
    ],
)
def test_a_queue_of_another_region_is_refused_when_the_config_loads(tmp_path: Path, body: str, named: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(ConfigError, match=named) as caught:
        load_config(path, region="us-east-1")
    assert "deployment in us-east-1" in str(caught.value) and str(caught.value).startswith(str(path))
    load_config(path)  # without a region (a unit test, a tool) the file itself is valid


def test_a_queue_of_another_account_in_the_region_is_served(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, f"    queue: {OTHER_ACCOUNT}\n"), region="us-east-1")
    queue = config.queue("orders")
    assert queue.queue_url(region="us-east-1", account_id="123456789012") == OTHER_ACCOUNT
    assert queue_arn(OTHER_ACCOUNT, "us-east-1") == "arn:aws:sqs:us-east-1:210987654321:billing"


def test_deployment_keys_parse_with_their_defaults() -> None:
    plain = parse_config("queues:\n  orders:\n    queue: orders\n    handler: app.h\n")
    assert (plain.poller.log_level, plain.poller.reserved_concurrency, plain.queue("orders").kms_key) == (
        "INFO",
        None,
        None,
    )
    alias = "arn:aws:kms:us-east-1:111111111111:alias/orders-key"
    set_ = parse_config(
        "poller: {log_level: DEBUG, reserved_concurrency: 20}\n"
        f"queues:\n  orders:\n    queue: orders\n    handler: app.h\n    kms_key: {alias}\n"
    )
    assert (set_.poller.log_level, set_.poller.reserved_concurrency, set_.queue("orders").kms_key) == (
        "DEBUG",
        20,
        alias,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "poller: {log_level: verbose}\n",
            r"poller\.log_level: expected one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL",
        ),
        ("poller: {reserved_concurrency: 0}\n", r"poller\.reserved_concurrency: expected an integer >= 1, got 0"),
        ("defaults: {kms_key: alias/orders}\n", r"queues\.orders\.kms_key: expected the ARN of a KMS key"),
        ("defaults: {kms_key: 'arn:aws:sqs:us-east-1:111111111111:q'}\n", r"queues\.orders\.kms_key: expected the ARN"),
    ],
)
def test_bad_deployment_keys_name_the_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text + "queues:\n  orders:\n    queue: orders\n    handler: app.h\n", source="my.yml")
