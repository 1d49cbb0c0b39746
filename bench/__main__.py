"""``python -m bench [--quick] [--json PATH] [--chart PATH] [--profile PATH] [--py312 PYTHON]``: every
benchmark of docs/benchmarks.md in one run, printed as a table and written as JSON."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import aws, efficiency, footprint, limit_cap, periods, restart_scale, throughput, wake
from bench.harness import create_table, quiet_logs

TARGETS = {  # key: (comparison, bound), from the issue
    "throughput_ratio": (">=", 0.95),
    "calls_per_message": ("<=", 0.21),
    "idle_calls_per_minute": ("<=", 4.0),
    "import_ms": ("<=", 300.0),
    "rss_mb": ("<=", 90.0),
    "limit_cap_loop_s_ratio": ("<=", 1.2),  # issue 20: loop-seconds against the fewest that fill the limit
    "limit_cap_limit_use": (">=", 0.95),
}


ROUND_TRIP_MS = 15.0
"""Network time added to each call in the second throughput run: a call within one AWS region takes
about this long; on loopback a call costs only moto's work, which hides what overlapping calls gains."""


def _plan(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "pairs": 6,
            "invocation_s": 120,
            "idle_min": 30,
            "steps_2016": 20,
            "idle_2016_min": 10,
            "imports": 3,
            "cycles": 1,
        }
    return {
        "pairs": 20,
        "invocation_s": 900,
        "idle_min": 120,
        "steps_2016": 60,
        "idle_2016_min": 30,
        "imports": 7,
        "cycles": 3,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    plan = _plan(args.quick)
    quiet_logs()
    details: dict[str, Any] = {}
    started = time.monotonic()
    with aws.moto_server() as url:
        create_table()
        print("throughput (sqs-loops vs hand-written boto3 loop, alternating trials) ...", flush=True)
        details["throughput"] = _profiled(args.profile, lambda: throughput.measure(pairs=plan["pairs"], messages=100))
        print(f"the same with {ROUND_TRIP_MS:g} ms of network per call ...", flush=True)
        details["throughput_network"] = throughput.measure(
            pairs=plan["pairs"], messages=100, round_trip_ms=ROUND_TRIP_MS
        )
        print("calls per message and per idle minute ...", flush=True)
        details["full_backlog"] = efficiency.sqs_loops_full_backlog(batch_ms=500, timeout_s=plan["invocation_s"])
        details["idle"] = efficiency.sqs_loops_idle(minutes=plan["idle_min"])
        details["full_backlog_2016"] = efficiency.recursive2016_full_backlog(batch_ms=500, steps=plan["steps_2016"])
        details["idle_2016"] = efficiency.recursive2016_idle(minutes=plan["idle_2016_min"])
        print("peak memory of one invocation over 1,000 messages ...", flush=True)
        aws.reset(url)
        create_table()
        details["rss"] = footprint.rss_mb(1000)
        print(f"restart over 1,000 resting queues, {ROUND_TRIP_MS:g} ms per call ...", flush=True)
        aws.reset(url)
        details["restart_1000"] = restart_scale.measure(queues=1000, round_trip_ms=ROUND_TRIP_MS)
    print("limit cap against today's rule (a simulation of the rule, under a second) ...", flush=True)
    details["limit_cap"] = limit_cap.measure()
    print("cold import ...", flush=True)
    details["import"] = footprint.import_ms(sys.executable, plan["imports"])
    if args.py312:
        details["import_py312"] = footprint.import_ms(args.py312, plan["imports"])
    if not args.no_sandbox:
        print("sandbox: scale-up and revival periods ...", flush=True)
        details["periods"] = periods.measure(cycles=plan["cycles"])
        print("sandbox: wake and growth, depth path and alarm-only path ...", flush=True)
        details["wake"] = wake.measure()
    lambda_import = details.get("import_py312", details["import"])
    results: dict[str, Any] = {
        "throughput_ratio": details["throughput"]["throughput_ratio"],
        "throughput_ratio_network": details["throughput_network"]["throughput_ratio"],
        "calls_per_message": details["full_backlog"]["calls_per_message"],
        "idle_calls_per_minute": details["idle"]["idle_calls_per_minute"],
        "baseline_2016": {
            "calls_per_message": details["full_backlog_2016"]["calls_per_message"],
            "idle_calls_per_minute": details["idle_2016"]["idle_calls_per_minute"],
        },
        "import_ms": lambda_import["import_ms"],
        "import_python": lambda_import["python"],
        "rss_mb": details["rss"]["rss_mb"],
        "scale_up_periods": details.get("periods", {}).get("scale_up_periods"),
        "revive_periods": details.get("periods", {}).get("revive_periods"),
        "restart_1000_s": details["restart_1000"]["restart_s"],
        "resting_calls_per_minute": details["restart_1000"]["resting_calls_per_minute"],
        **_limit_cap_summary(details["limit_cap"]),
        "wake": {
            path: {k: v for k, v in figures.items() if k.startswith(("wake", "grow"))}
            for path, figures in details.get("wake", {}).items()
            if isinstance(figures, dict)
        },
    }
    results["targets"] = {
        key: {"target": f"{op} {bound:g}", "met": results[key] >= bound if op == ">=" else results[key] <= bound}
        for key, (op, bound) in TARGETS.items()
    }
    results["details"] = details
    results["run"] = {
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "quick": args.quick,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(time.monotonic() - started, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    return results


def _limit_cap_summary(figures: dict[str, Any]) -> dict[str, Any]:
    """The worst case of the single-queue backlogs under the cap, and the shared downstream's saving."""
    cases = figures["single"].values()
    return {
        "limit_cap_loop_s_ratio": max(case["cap"]["loop_s_ratio"] for case in cases),
        "limit_cap_limit_use": min(case["cap"]["limit_use"] for case in cases),
        "limit_cap_today_loop_s_ratio": max(case["today"]["loop_s_ratio"] for case in cases),
        "limit_cap_slow_caught_up_s": max(case["cap"]["slow_handler_caught_up_s"] or 0 for case in cases),
        "limit_cap_shared_saved_usd_a_month": max(v["saved_usd_a_month"] for v in figures["shared"].values()),
    }


def _profiled(path: Path | None, work: Any) -> Any:
    if path is None:
        return work()
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    profiler.start()
    try:
        return work()
    finally:
        profiler.stop()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(profiler.output_text(unicode=False, color=False))
        print(f"profile of the throughput benchmark: {path}")


def _table(results: dict[str, Any]) -> str:
    lines = [f"{'figure':24} {'sqs-loops':>10} {'2016 design':>12}  target"]
    base = results["baseline_2016"]
    for key in ("throughput_ratio", "calls_per_message", "idle_calls_per_minute", "import_ms", "rss_mb"):
        target = results["targets"][key]
        mark = "met" if target["met"] else "NOT met"
        lines.append(f"{key:24} {results[key]:>10} {base.get(key, ''):>12}  {target['target']} ({mark})")
    for key in ("limit_cap_loop_s_ratio", "limit_cap_limit_use"):
        target = results["targets"][key]
        mark = "met" if target["met"] else "NOT met"
        today = results["limit_cap_today_loop_s_ratio"] if key == "limit_cap_loop_s_ratio" else ""
        lines.append(f"{key:24} {results[key]:>10} {today:>12}  {target['target']} ({mark}; beside: today's rule)")
    for key in ("throughput_ratio_network", "scale_up_periods", "revive_periods", "restart_1000_s"):
        lines.append(f"{key:24} {results[key] if results[key] is not None else '-':>10}")
    lines.append(f"{'resting_calls_per_minute':24} {results['resting_calls_per_minute']:>10}")
    if results["wake"]:
        lines.append(f"{'wake and growth':24} {'depth':>10} {'alarm-only':>12}  (sandbox s; periods)")
        depth, alarms = results["wake"].get("depth", {}), results["wake"].get("alarm_only", {})
        for key in ("wake_s", "wake_periods", "grow_s", "grow_periods", "grow_by_loops_s"):
            lines.append(f"{key:24} {depth.get(key, '-')!s:>10} {alarms.get(key, '-')!s:>12}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer trials and shorter simulated runs (~1 minute)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--chart", type=Path, help="write a PNG chart of the results here")
    parser.add_argument("--profile", type=Path, help="profile the throughput benchmark (pyinstrument) into this file")
    parser.add_argument("--py312", help="a Python 3.12 (the Lambda runtime) with the project installed, for import_ms")
    parser.add_argument("--no-sandbox", action="store_true", help="skip the sandbox periods")
    args = parser.parse_args(argv)
    results = run(args)
    print(_table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"results: {args.json}")
    if args.chart:
        from bench.chart import write_chart

        write_chart(results, args.chart)
        print(f"chart: {args.chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
