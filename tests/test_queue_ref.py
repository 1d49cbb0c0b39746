"""The one parser of queue references: names, URLs (with and without a region in the host) and ARNs."""

from __future__ import annotations

import pytest

from poller.exceptions import BadQueueRef
from poller.sqs import QueueRef

URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"


@pytest.mark.parametrize(
    ("value", "name", "region", "account", "url"),
    [
        ("orders", "orders", None, None, None),
        ("orders.fifo", "orders.fifo", None, None, None),
        (URL, "orders", "eu-west-1", "123456789012", URL),
        ("https://eu-west-1.queue.amazonaws.com/123456789012/orders", "orders", "eu-west-1", "123456789012", None),
        ("http://127.0.0.1:5000/123456789012/orders", "orders", None, "123456789012", None),
        ("arn:aws:sqs:us-west-2:123456789012:orders", "orders", "us-west-2", "123456789012", None),
        ("arn:aws-cn:sqs:cn-north-1:123456789012:orders", "orders", "cn-north-1", "123456789012", None),
    ],
)
def test_a_reference_is_read_into_its_parts(
    value: str, name: str, region: str | None, account: str | None, url: str | None
) -> None:
    ref = QueueRef.parse(value)
    assert (ref.name, ref.region, ref.account) == (name, region, account)
    assert ref.url == (url or (value if value.startswith("http") else None))


@pytest.mark.parametrize(
    "value",
    [
        "",
        "a" * 81,
        "orders!",
        "https://sqs.us-east-1.amazonaws.com/orders",
        "https://x/12/orders",
        "arn:aws:lambda:us-east-1:123456789012:function:f",
        "arn:aws:sqs:us-east-1:1234:orders",
        42,
    ],
)
def test_what_is_not_a_queue_is_refused_saying_what_a_reference_looks_like(value: object) -> None:
    with pytest.raises(BadQueueRef, match="expected an SQS queue name"):
        QueueRef.parse(value)  # type: ignore[arg-type]


def test_urls_and_arns_are_built_from_what_the_reference_knows_first() -> None:
    named = QueueRef.parse("orders")
    assert named.url_in(region="us-east-1", account_id="111111111111") == (
        "https://sqs.us-east-1.amazonaws.com/111111111111/orders"
    )
    other = QueueRef.parse("arn:aws:sqs:us-west-2:222222222222:orders")
    assert other.arn_in(region="us-east-1", account_id="111111111111") == "arn:aws:sqs:us-west-2:222222222222:orders"
    assert QueueRef.parse(URL).beside("orders-dlq").url == URL + "-dlq"


def test_two_references_to_one_queue_share_an_identity() -> None:
    assert QueueRef.parse(URL).identity == QueueRef.parse(URL.replace("sqs.eu-west-1", "SQS.EU-WEST-1")).identity
    assert QueueRef.parse(URL).names_queue(URL + "/")
    assert QueueRef.parse("orders").names_queue("http://127.0.0.1:5000/123456789012/orders")
    assert not QueueRef.parse("orders").names_queue("http://127.0.0.1:5000/123456789012/orders-dlq")
