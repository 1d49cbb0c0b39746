"""A loop invocation's event: ``{queue_url, token, loop_id, generation}`` (see docs/loop.md)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from poller.exceptions import BadLoopEvent


@dataclass(frozen=True)
class LoopStep:
    """One recursion step of one loop. ``generation`` is the value the row holds when this step starts;
    the claim moves it to ``generation + 1``, and the next step is sent with that."""

    queue_url: str
    token: str
    loop_id: str
    generation: int
    claim_id: str | None = None  # only on a step handed over after its claim may have landed unseen

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
        claim_id = event.get("claim_id")
        if claim_id is not None and (not isinstance(claim_id, str) or not claim_id):
            problems.append(f"claim_id: expected a non-empty string when present, got {claim_id!r}")
        if problems:
            raise BadLoopEvent("bad loop event: " + "; ".join(problems))
        return cls(event["queue_url"], event["token"], event["loop_id"], generation, claim_id)

    def next(self) -> LoopStep:
        """The step this one invokes once it has claimed the row."""
        return replace(self, generation=self.generation + 1, claim_id=None)

    def handed_over(self, claim_id: str) -> LoopStep:
        """This same step again, for a fresh invocation, when this one could not tell if its claim landed."""
        return replace(self, claim_id=claim_id)

    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "queue_url": self.queue_url,
            "token": self.token,
            "loop_id": self.loop_id,
            "generation": self.generation,
        }
        if self.claim_id is not None:
            payload["claim_id"] = self.claim_id
        return payload

    def log_fields(self) -> dict[str, object]:
        return {"token": self.token, "loop_id": self.loop_id, "generation": self.generation}
