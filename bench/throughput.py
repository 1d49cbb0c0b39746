"""Messages a second of one sqs-loops loop against the hand-written boto3 loop, on the same moto server
and the same queue sizes, in alternating trials (so drift on a shared machine hits both alike).

Each trial fills the queue with ``messages`` (untimed), then one loop handles and deletes them all with the
no-op handler. sqs-loops runs as deployed: its step chain goes on from trial to trial (claim, work,
recursion recorded), its clients are the entry point's. Besides wall time, the CPU time of this process
is taken (the moto server runs in another): the loop's own overhead, which the server's time hides."""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench import aws, handlers
from bench.baselines import hand_written_loop
from bench.harness import BenchContext, bench_config, loop_services, next_step, run_step
from poller.lease.step import LoopStep

TAIL = 10
"""Messages left in the queue under every trial (below)."""


def measure(*, pairs: int, messages: int, round_trip_ms: float = 0, handler: str = "noop") -> dict[str, Any]:
    """``round_trip_ms``: network time added to every call of both loops (:class:`bench.aws.RoundTrip`);
    ``handler``: the name of both loops' handler in :mod:`bench.handlers`."""
    feeder = aws.sqs_client()
    url = aws.create_queue(feeder, f"throughput-{round_trip_ms:g}ms-{handler}")
    config = bench_config(url, handler=f"bench.handlers.{handler}")
    services = loop_services()
    services.tokens.create(url, "slot-1", loop_id="loop-bench", now_ms=0)
    state = {"step": LoopStep(url, "slot-1", "loop-bench", 0)}
    plain = aws.sqs_client()
    network = aws.RoundTrip(round_trip_ms).apply(
        plain, services.sqs_client, services.tokens.model._get_connection().connection.client
    )
    try:
        work = getattr(handlers, handler)
        return _pairs(url, feeder, plain, config, services, state, pairs=pairs, messages=messages, work=work) | {
            "round_trip_ms": round_trip_ms,
            "handler": handler,
        }
    finally:
        network.remove()


def _pairs(
    url: str,
    feeder: Any,
    plain: Any,
    config: Any,
    services: Any,
    state: dict[str, Any],
    *,
    pairs: int,
    messages: int,
    work: Any,
) -> dict[str, Any]:

    def ours() -> None:
        handled = [0]
        context = BenchContext(900, on_batch=None)

        def on_batch(records: list[Any]) -> None:
            handled[0] += len(records)
            if handled[0] >= messages:
                context.stop()

        context.on_batch = on_batch
        outcome = run_step(state["step"], config, services, context)
        assert outcome.succeeded == messages and outcome.recursed, outcome
        following = next_step(services)
        assert following is not None
        state["step"] = following

    def theirs() -> None:
        assert hand_written_loop(plain, url, work, messages) == messages

    runs: dict[str, list[tuple[float, float]]] = {"sqs_loops": [], "hand_written": []}
    # A backlog that outlasts each trial (as it outlasts a 900-s step): ten messages more than either loop
    # takes, so the trial's last receive, or receive ahead, finds messages, as in a backlog, rather than
    # an empty queue's long poll (once per step in a deployment, not once per 100 messages).
    aws.fill(feeder, url, TAIL)
    for warm in (ours, theirs):  # handler import, connections: untimed
        aws.fill(feeder, url, messages)
        warm()
    for pair in range(pairs):
        order = [("sqs_loops", ours), ("hand_written", theirs)]
        for name, run in order if pair % 2 == 0 else reversed(order):
            aws.fill(feeder, url, messages)
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            runs[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    ratios = [h[0] / o[0] for o, h in zip(runs["sqs_loops"], runs["hand_written"], strict=True)]
    cpu_ratios = [o[1] / h[1] for o, h in zip(runs["sqs_loops"], runs["hand_written"], strict=True)]
    return {
        "throughput_ratio": round(statistics.median(ratios), 3),
        "throughput_ratios": [round(r, 3) for r in ratios],
        # fastest trial against fastest trial: what each loop does when the shared machine leaves it alone
        "best_trial_ratio": round(min(w for w, _ in runs["hand_written"]) / min(w for w, _ in runs["sqs_loops"]), 3),
        "sqs_loops_msgs_per_s": round(messages / statistics.median(w for w, _ in runs["sqs_loops"]), 1),
        "hand_written_msgs_per_s": round(messages / statistics.median(w for w, _ in runs["hand_written"]), 1),
        "cpu_ms_per_message": {
            name: round(statistics.median(c for _, c in values) * 1000 / messages, 3) for name, values in runs.items()
        },
        "cpu_ratio": round(statistics.median(cpu_ratios), 3),
        "pairs": pairs,
        "messages_per_trial": messages,
    }
