"""Queue references: what the config, a loop event, an alarm or an operator names a queue by (a name, a
URL or an ARN), read once here into its name, region and account. Nothing else in sqs-loops takes a queue
URL or ARN apart."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlparse

from poller.aws.arn import Arn, dns_suffix_of, partition_of
from poller.exceptions import BadQueueRef

# SQS queue names: 1-80 of alphanumerics, hyphens and underscores; FIFO queues end in ".fifo".
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}(\.fifo)?$")
_ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
# https://sqs.<region>.<dns suffix>/... (and the legacy https://<region>.queue.<dns suffix>/...), in any
# partition: amazonaws.com, amazonaws.com.cn, c2s.ic.gov, ...
_REGION = r"([a-z]{2}(?:-[a-z]+)+-[0-9]+)"
_HOST_REGION = (re.compile(rf"^sqs\.{_REGION}\."), re.compile(rf"^{_REGION}\.queue\."))
NO_ACCOUNT = "000000000000"
"""The account of an ARN built from a bare name with no account known (the event's ``eventSourceARN``)."""


def is_queue_url(value: str) -> bool:
    return value.startswith(("https://", "http://"))


@dataclass(frozen=True)
class QueueRef:
    """A queue as the config or an event named it. ``url`` is the URL given (its host may be a local
    endpoint), ``region`` and ``account`` are known when the reference carried them."""

    name: str
    region: str | None = None
    account: str | None = None
    url: str | None = None

    @classmethod
    def parse(cls, value: str) -> QueueRef:
        """A queue name, URL (``https://sqs.<region>.amazonaws.com/<account>/<name>``) or ARN. Raises
        :class:`~poller.exceptions.BadQueueRef` saying what a reference looks like."""
        if not isinstance(value, str):
            raise BadQueueRef(value)
        arn = Arn.parse(value)
        if arn is not None:
            if arn.service != "sqs" or not arn.region or not _ACCOUNT_ID.match(arn.account):
                raise BadQueueRef(value)
            if not _QUEUE_NAME.match(arn.resource):
                raise BadQueueRef(value)
            return cls(name=arn.resource, region=arn.region, account=arn.account)
        if not is_queue_url(value):
            if not _QUEUE_NAME.match(value):
                raise BadQueueRef(value)
            return cls(name=value)
        parsed = urlparse(value)
        parts = [p for p in parsed.path.split("/") if p]
        if not parsed.netloc or len(parts) != 2 or not _ACCOUNT_ID.match(parts[0]) or not _QUEUE_NAME.match(parts[1]):
            raise BadQueueRef(value)
        host = parsed.netloc.lower()
        region = next((m.group(1) for m in (p.match(host) for p in _HOST_REGION) if m), None)
        return cls(name=parts[1], region=region, account=parts[0], url=value)

    @classmethod
    def of_url(cls, url: str) -> QueueRef:
        """A URL that SQS or our own config gave (a loop event's ``queue_url``): read leniently, the name
        being its last path part, so that an odd endpoint never fails a loop."""
        try:
            return cls.parse(url)
        except BadQueueRef:
            parts = [p for p in urlparse(url).path.split("/") if p]
            account = parts[-2] if len(parts) >= 2 else None
            return cls(name=parts[-1] if parts else "", account=account, url=url)

    @property
    def fifo(self) -> bool:
        return self.name.endswith(".fifo")

    @property
    def identity(self) -> str:
        """What two references to one queue share: the URL's host and path, or the name alone."""
        if self.url is None:
            return self.name
        parsed = urlparse(self.url)
        return f"{parsed.netloc.lower()}{parsed.path.rstrip('/')}"

    def url_in(self, *, region: str, account_id: str) -> str:
        """The queue's URL: the one given, or the name's URL in ``region`` and ``account_id``."""
        if self.url is not None:
            return self.url
        where = self.region or region
        return f"https://sqs.{where}.{dns_suffix_of(where)}/{self.account or account_id}/{self.name}"

    def arn_in(self, *, region: str, account_id: str, partition: str | None = None) -> str:
        """``arn:<partition>:sqs:<region>:<account>:<name>``, the reference's own region and account first;
        the partition is the region's unless given (a template's ``${AWS::Partition}``)."""
        where = self.region or region
        return f"arn:{partition or partition_of(where)}:sqs:{where}:{self.account or account_id}:{self.name}"

    def beside(self, name: str) -> QueueRef:
        """Another queue in the same place (a dead-letter queue beside its source)."""
        url = None if self.url is None else self.url.rstrip("/").rsplit("/", 1)[0] + "/" + name
        return QueueRef(name=name, region=self.region, account=self.account, url=url)

    def names_queue(self, url: str) -> bool:
        """True when ``url`` is this queue: the same URL when one was given, else a URL ending in the name."""
        other = QueueRef.of_url(url)
        return other.identity == self.identity if self.url is not None else other.name == self.name
