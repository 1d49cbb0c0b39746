"""Amazon Resource Names, read in one place: ``arn:<partition>:<service>:<region>:<account>:<resource>``."""

from __future__ import annotations

from dataclasses import dataclass


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
