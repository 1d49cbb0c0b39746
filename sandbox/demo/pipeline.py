"""The demo's three-stage pipeline, planned up front: stage 1 (``groups``) gets one message a job and lists
its groups, stage 2 (``items``) gets one a group and lists its items, stage 3 (``fetch``) gets one an item
and fetches it. Each handler calls the vendor API, then sends the next stage's messages (with the producer
library) from what its own message carries, so the demo knows every message that should exist: what a
handler sends is its message's ``children``. Some items are poison (they always fail: the DLQ)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

STAGES = ("groups", "items", "fetch")
"""The pipeline's queue keys (sandbox/demo/queues.yml), in order."""

CALLS_PER_JOB = 1 + 3 + 3 * 12
"""A job's vendor calls on average: itself, 2-4 groups, 8-16 items a group."""


@dataclass
class PipelinePlan:
    """Every message of the run by id: its stage, its body (which carries its children), its parent."""

    jobs: list[dict[str, Any]] = field(default_factory=list)  # stage 1 bodies, in feed order
    stage_of: dict[str, str] = field(default_factory=dict)
    parent_of: dict[str, str] = field(default_factory=dict)
    poison: set[str] = field(default_factory=set)

    @classmethod
    def make(cls, messages: int, *, poison_every: int, seed: int) -> PipelinePlan:
        """About ``messages`` vendor calls in all (``CALLS_PER_JOB`` a job); one item in ``poison_every``
        is poison."""
        rand = random.Random(seed)
        plan = cls()
        count = 0
        for j in range(max(1, round(messages / CALLS_PER_JOB))):
            job_id = f"job{j}"
            groups = []
            for g in range(rand.randint(2, 4)):
                group_id = f"{job_id}.g{g}"
                items = []
                for i in range(rand.randint(8, 16)):
                    count += 1
                    item = {"id": f"{group_id}.i{i}", "poison": count % poison_every == 0}
                    items.append(item)
                    plan._add(item, "fetch", group_id)
                group = {"id": group_id, "children": items}
                groups.append(group)
                plan._add(group, "items", job_id)
            job = {"id": job_id, "children": groups}
            plan.jobs.append(job)
            plan._add(job, "groups", None)
        return plan

    def _add(self, body: dict[str, Any], stage: str, parent: str | None) -> None:
        self.stage_of[body["id"]] = stage
        if parent is not None:
            self.parent_of[body["id"]] = parent
        if body.get("poison"):
            self.poison.add(body["id"])

    def expected(self, fed: set[str], processed: set[str]) -> set[str]:
        """The messages that should exist: the jobs fed, and the children of every message processed."""
        return {m for m in self.stage_of if m in fed or self.parent_of.get(m) in processed}

    def calls(self) -> int:
        return len(self.stage_of)
