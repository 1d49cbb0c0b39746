"""Two weighted queues on one shared downstream in the sandbox (moto server, local Lambda runtime, the real
loops), bounded and short: the vendor never sees more than 1.05 x the shared limit over any 5 s, while both
queues have a backlog the weight-3 queue gets the bigger part, and the limit is used (record-by-record
loops, as docs/downstream.md advises under a shared limit). (How close to 1:3 is for the
simulation, tests/test_shared_sim.py: a loaded 2-core machine decides it here.)"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import boto3

from poller.downstream.shares import max_window
from sandbox.demo import handlers
from sandbox.demo.vendor_api import VendorApi
from sandbox.environment import Sandbox

CONFIG = Path(__file__).parent / "fixtures" / "shared_queues.yml"


def test_two_weighted_queues_share_one_limit() -> None:
    handlers.reset()
    vendor = VendorApi()
    os.environ[handlers.VENDOR_ENV] = vendor.start()
    try:
        with Sandbox(CONFIG, prefix="shared-test") as box:
            sqs = boto3.client("sqs", region_name=box.region)
            for key in ("light", "heavy"):
                for start in range(0, 300, 10):
                    entries = [
                        {"Id": str(n), "MessageBody": json.dumps({"id": f"{key}-{start + n}"})} for n in range(10)
                    ]
                    sqs.send_message_batch(QueueUrl=box.queue_url(key), Entries=entries)
            box.run_restart()
            time.sleep(22)  # both lanes counted (7 s), then about 15 s of both queues backlogged
    finally:
        vendor.stop()
    with vendor._lock:
        light, heavy = sorted(vendor.calls.get("/items", [])), sorted(vendor.calls.get("/fetch", []))
    assert max_window(light + heavy, 5.0) <= 1.05 * 20 * 5
    since = max(light[0], heavy[0]) + 8.0  # both lanes count from their switch on
    late_light = sum(1 for t in light if t >= since)
    late_heavy = sum(1 for t in heavy if t >= since)
    assert late_heavy > 1.5 * late_light > 0, (late_light, late_heavy)
    ended = max(light[-1], heavy[-1])
    used = (late_light + late_heavy) / (20 * (ended - since))
    print(f"shared sandbox: {late_light} + {late_heavy} calls in {ended - since:.1f} s: {used:.2f} of the limit")
    # Used while both have a backlog (0.90-0.98 in three runs on 2 cores shared by four sessions; the simulation
    # shows >= 0.95 over 30 s, tests/test_shared_sim.py): below 0.7, a share is held that nobody uses.
    assert used >= 0.7, used
