"""A loop invocation's event: ``{queue_url, token, loop_id, generation}`` (see docs/loop.md)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from poller.exceptions import BadLoopEvent

MAX_CARRIED_CLAIM_IDS = 32
"""A handed-over step carries the claim ids of every invocation of this step that may have landed unseen,
at most this many (the newest): each hand-over spends a whole invocation, so 32 in a row is DynamoDB out of
reach for that long; restart revives the row if an older one landed. Far below DynamoDB's 100 ``IN`` operands."""


@dataclass(frozen=True)
class LoopStep:
    """One recursion step of one loop. ``generation`` is the value the row holds when this step starts;
    the claim moves it to ``generation + 1``, and the next step is sent with that."""

    queue_url: str
    token: str
    loop_id: str
    generation: int
    claim_ids: tuple[str, ...] = ()  # only on a step handed over: claims of this step that may have landed

    @classmethod
    def parse(cls, event: Any) -> LoopStep:
        if not isinstance(event, dict):
            raise BadLoopEvent(f"a loop event is a JSON object, got {type(event).__name__}")
        problems = [
            f"{name}: expected a non-empty string, got {event.get(name)!r}"
            for name in ("queue_url", "token", "loop_id")
            if not isinstance(event.get(name), str) or not event.get(name)
        ]
        generation = event.get("generation")
        if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
            problems.append(f"generation: expected an integer >= 0, got {generation!r}")
            generation = -1
        claim_ids = event.get("claim_ids", [])
        if "claim_id" in event:  # the one id an event sent by an older version carries
            claim_ids = [event["claim_id"]]
        if not isinstance(claim_ids, list) or not all(isinstance(c, str) and c for c in claim_ids):
            problems.append(f"claim_ids: expected a list of non-empty strings when present, got {claim_ids!r}")
            claim_ids = []
        if problems:
            raise BadLoopEvent("bad loop event: " + "; ".join(problems))
        return cls(event["queue_url"], event["token"], event["loop_id"], generation, tuple(claim_ids))

    def next(self) -> LoopStep:
        """The step this one invokes once it has claimed the row."""
        return replace(self, generation=self.generation + 1, claim_ids=())

    def handed_over(self, claim_id: str) -> LoopStep:
        """This same step again, for a fresh invocation, when this one could not tell if its claim landed.
        It keeps the ids this step carried: a claim two hand-overs back may be the one that landed, and
        the row then holds its id, not the newest."""
        return replace(self, claim_ids=(*self.claim_ids, claim_id)[-MAX_CARRIED_CLAIM_IDS:])

    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "queue_url": self.queue_url,
            "token": self.token,
            "loop_id": self.loop_id,
            "generation": self.generation,
        }
        if self.claim_ids:
            payload["claim_ids"] = list(self.claim_ids)
        return payload

    def log_fields(self) -> dict[str, object]:
        return {"token": self.token, "loop_id": self.loop_id, "generation": self.generation}
