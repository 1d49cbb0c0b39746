"""What `sqs-loops demo --deployed` reads differently: its handlers run in container processes (from the
deployed package), so what they processed is counted where they send it, the vendor API, and the report
names the stack and what the run could not check."""

from __future__ import annotations

from typing import Any

from sandbox.demo import handlers
from sandbox.demo.vendor_api import VendorApi
from sandbox.environment import Sandbox

UNCHECKED_WHEN_DEPLOYED = {
    "double_owned": "token-table writes are traced by a hook in this process's botocore, not the containers'",
    "duplicate_causes": "the handlers' delivery records stay in their containers",
}


def processed_counts(deployed: bool, vendor: VendorApi) -> dict[str, int]:
    """Job id -> times handled successfully: the handlers' own record, or (deployed) the vendor's."""
    if deployed:
        with vendor._lock:
            return dict(vendor.job_ids)
    with handlers._lock:
        return dict(handlers.processed)


def deployment_report(sandbox: Sandbox) -> dict[str, Any] | None:
    """The stack the run deployed, where its code ran from, and what moto skipped that was filled in."""
    deployment = sandbox.deployment
    if deployment is None:
        return None
    containers = sandbox.runtime.containers
    ready = containers.first_ready if containers is not None else {}
    return {
        "stack": deployment.stack,
        "code": "the deployed package (downloaded from the deployment bucket, checked against Lambda's CodeSha256)",
        "deploy_s": deployment.seconds,
        "filled_in": deployment.fill.filled,
        "not_filled_in": deployment.fill.not_filled,
        "functions": {
            name: {
                "handler": f.handler,
                "timeout_s": f.timeout_s,
                "ran_from": (ready.get(name) or {}).get("handler_file"),
            }
            for name, f in deployment.functions.items()
        },
        "python": next((r["python"] for r in ready.values()), None),
        "not_loadable_here": next((r["unloadable"] for r in ready.values()), []),
        "cold_starts": containers.cold_starts if containers is not None else 0,
        "unchecked": UNCHECKED_WHEN_DEPLOYED,
    }
