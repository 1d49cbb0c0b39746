"""Amazon Resource Names, read in one place: ``arn:<partition>:<service>:<region>:<account>:<resource>``,
and the partition and DNS suffix of a region, so that no ``aws`` or ``amazonaws.com`` is written anywhere
else."""

from __future__ import annotations

from dataclasses import dataclass

# (region prefix, partition, DNS suffix), most specific prefix first. From the `partitions` of botocore's
# data/endpoints.json (regionRegex, partition, dnsSuffix); every other region is in the `aws` partition.
_PARTITIONS = (
    ("cn-", "aws-cn", "amazonaws.com.cn"),
    ("us-gov-", "aws-us-gov", "amazonaws.com"),
    ("us-isob-", "aws-iso-b", "sc2s.sgov.gov"),
    ("us-isof-", "aws-iso-f", "csp.hci.ic.gov"),
    ("eu-isoe-", "aws-iso-e", "cloud.adc-e.uk"),
    ("us-iso-", "aws-iso", "c2s.ic.gov"),
)
_STANDARD = ("aws", "amazonaws.com")


def _of(region: str) -> tuple[str, str]:
    return next(((p, s) for prefix, p, s in _PARTITIONS if region.startswith(prefix)), _STANDARD)


def partition_of(region: str) -> str:
    """The partition a region belongs to: ``aws``, ``aws-cn``, ``aws-us-gov``, ..."""
    return _of(region)[0]


def dns_suffix_of(region: str) -> str:
    """The DNS suffix of a region's endpoints: ``amazonaws.com``, ``amazonaws.com.cn``, ..."""
    return _of(region)[1]


@dataclass(frozen=True)
class Arn:
    partition: str
    service: str
    region: str
    account: str
    resource: str  # everything after the account: "alarm:<name>", "function:<name>[:<qualifier>]", a queue name

    @classmethod
    def parse(cls, value: str) -> Arn | None:
        """The ARN's parts, or None when ``value`` is not an ARN."""
        parts = value.split(":", 5) if isinstance(value, str) else []
        if len(parts) != 6 or parts[0] != "arn" or not parts[1].startswith("aws") or not parts[2]:
            return None
        return cls(*parts[1:])
