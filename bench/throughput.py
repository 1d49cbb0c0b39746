"""Messages a second of one sqs-loops loop against the hand-written boto3 loop, on the same moto server
and the same queue sizes, in alternating trials (so drift on a shared machine hits both alike).

Each trial fills the queue with ``messages`` (untimed), then one loop handles and deletes them all with the
no-op handler. sqs-loops runs as deployed, one step the whole benchmark long (a step lasts 900 s at a
backlog, thousands of batches): its claim, its threads and its last line come once, in the untimed warm-up,
as once per 15 minutes in a deployment, and each trial makes the calls the hand-written loop makes, a
receive and a delete per 10 messages. Between its trials the step waits at its next receive, held before
the call is sent (:class:`_Gate`); a trial ends when the delete of its last message is answered, as the
hand-written loop's does. ``step_per_trial=True`` is the former rig: a claim, a step and its recursion per
trial (per-step costs then weigh as if a step lasted 100 messages). Besides wall time, the CPU time of this
process is taken (the moto server runs in another): the loop's own overhead, which the server's time hides."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from unittest import mock

from bench import aws, handlers
from bench.baselines import hand_written_loop
from bench.harness import BenchContext, bench_config, loop_services, next_step, run_step
from poller.lease.step import LoopStep
from poller.loop.background_delete import BackgroundDelete
from poller.loop.outcome import Outcome

TAIL = 10
"""Messages left in the queue under every trial (below)."""

GATE_TIMEOUT_S = 120.0
"""How long a trial waits for the step at most (a step that died says so instead of hanging the bench)."""


def measure(
    *,
    pairs: int,
    messages: int,
    round_trip_ms: float = 0,
    handler: str = "noop",
    step_per_trial: bool = False,
    delete_inline: bool = False,
) -> dict[str, Any]:
    """``round_trip_ms``: network time added to every call of both loops (:class:`bench.aws.RoundTrip`);
    ``handler``: the name of both loops' handler in :mod:`bench.handlers`; ``delete_inline``: the loop as it
    would be without its background delete (each batch's delete made in the loop's thread before the next
    receive, as the hand-written loop makes it): what the overlap costs or gains on this rig."""
    if delete_inline:
        with mock.patch.object(BackgroundDelete, "submit", _submit_inline):
            return measure(
                pairs=pairs,
                messages=messages,
                round_trip_ms=round_trip_ms,
                handler=handler,
                step_per_trial=step_per_trial,
            ) | {"delete_inline": True}
    feeder = aws.sqs_client()
    url = aws.create_queue(feeder, f"throughput-{round_trip_ms:g}ms-{handler}{'-per-trial' if step_per_trial else ''}")
    config = bench_config(url, handler=f"bench.handlers.{handler}")
    services = loop_services()
    services.tokens.create(url, "slot-1", loop_id="loop-bench", now_ms=0)
    plain = aws.sqs_client()
    network = aws.RoundTrip(round_trip_ms)
    network.apply(plain, services.sqs_client, services.tokens.model._get_connection().connection.client)
    gate = _Gate(messages)
    gate.watch_deletes(services.sqs_client)

    def receive_client(client: Any) -> Any:
        network.apply(client)
        return client if step_per_trial else gate.watch_receives(client)

    services = _receive_clients(services, receive_client)
    step = LoopStep(url, "slot-1", "loop-bench", 0)
    work = getattr(handlers, handler)
    try:
        ours = (
            _StepPerTrial(step, config, services, messages)
            if step_per_trial
            else _OneStep(step, config, services, gate, url, feeder)
        )

        def theirs() -> None:
            assert hand_written_loop(plain, url, work, messages) == messages

        try:
            result = _pairs(url, feeder, ours, theirs, pairs, messages)
        finally:
            ours.close()
        return result | {"round_trip_ms": round_trip_ms, "handler": handler, "step_per_trial": step_per_trial}
    finally:
        network.remove()


def _submit_inline(self: BackgroundDelete, job: Callable[[], None]) -> None:
    self.wait()
    job()


def _receive_clients(services: Any, wrap: Callable[[Any], Any]) -> Any:
    """The loop's long-poll clients (one per wait, made on first use), each passed to ``wrap`` once: the
    round trip and the gate apply to them as to the other clients."""
    make = services.sqs_receive_client
    made: dict[int, Any] = {}

    def receive_client(wait_s: int) -> Any:
        if wait_s not in made:
            made[wait_s] = wrap(services.sqs_client if make is None else make(wait_s))
        return made[wait_s]

    return replace(services, sqs_receive_client=receive_client)


class _Gate:
    """Holds the step's receives between its trials (a botocore ``before-call`` hook that waits), once
    ``messages`` were received in the trial (so a receive ahead, too, waits for the next trial), and tells
    when they were deleted (``after-call`` of DeleteMessageBatch)."""

    def __init__(self, messages: int):
        self.messages = messages
        self._cond = threading.Condition()
        self._open = False
        self._received = 0
        self._deleted = 0
        self.holding = True  # False at the end: every receive goes through

    def watch_receives(self, client: Any) -> Any:
        client.meta.events.register("before-call.sqs.ReceiveMessage", self._before_receive)
        client.meta.events.register("after-call.sqs.ReceiveMessage", self._after_receive)
        return client

    def watch_deletes(self, client: Any) -> None:
        client.meta.events.register("after-call.sqs.DeleteMessageBatch", self._after_delete)

    def open(self) -> None:
        with self._cond:
            self._received = self._deleted = 0
            self._open = True
            self._cond.notify_all()

    def wait_deleted(self) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._deleted >= self.messages, GATE_TIMEOUT_S):
                raise RuntimeError(
                    f"the step deleted {self._deleted} of {self.messages} messages in {GATE_TIMEOUT_S:g} s"
                )

    def release(self) -> None:
        with self._cond:
            self.holding = False
            self._cond.notify_all()

    def _before_receive(self, **_: Any) -> None:
        with self._cond:
            self._cond.wait_for(lambda: (self._open and self._received < self.messages) or not self.holding)

    def _after_receive(self, parsed: dict[str, Any], **_: Any) -> None:
        with self._cond:
            self._received += len(parsed.get("Messages", []))

    def _after_delete(self, parsed: dict[str, Any], **_: Any) -> None:
        with self._cond:
            self._deleted += len(parsed.get("Successful", []))
            if self._deleted >= self.messages:  # the trial's end: the only wake-up (each is CPU charged to ours)
                self._cond.notify_all()


class _OneStep:
    """One step of the loop on a thread of its own, run trial by trial through the gate."""

    def __init__(self, step: LoopStep, config: Any, services: Any, gate: _Gate, url: str, feeder: Any):
        self.gate, self.url, self.feeder = gate, url, feeder
        self.context = BenchContext(900, on_batch=None)
        self.outcome: Outcome | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(step, config, services), daemon=True)
        self.thread.start()

    def _run(self, step: LoopStep, config: Any, services: Any) -> None:
        try:
            self.outcome = run_step(step, config, services, self.context)
        except BaseException as exc:  # said by the trial that waits for it
            self.error = exc

    def __call__(self) -> None:
        if self.error is not None or not self.thread.is_alive():
            raise RuntimeError(f"the step ended before its trial: {self.error or self.outcome}")
        self.gate.open()
        self.gate.wait_deleted()

    def close(self) -> None:
        """Stop the step as the runtime's timeout would, and let it end (its last receive finds the tail)."""
        self.context.stop()
        self.gate.release()
        self.thread.join(timeout=30)


class _StepPerTrial:
    """The former rig: each trial one step (claim, batches, recursion recorded), the chain going on."""

    def __init__(self, step: LoopStep, config: Any, services: Any, messages: int):
        self.state = {"step": step}
        self.config, self.services, self.messages = config, services, messages

    def __call__(self) -> None:
        handled = [0]
        context = BenchContext(900, on_batch=None)

        def on_batch(records: list[Any]) -> None:
            handled[0] += len(records)
            if handled[0] >= self.messages:
                context.stop()

        context.on_batch = on_batch
        outcome = run_step(self.state["step"], self.config, self.services, context)
        assert outcome.succeeded == self.messages and outcome.recursed, outcome
        following = next_step(self.services)
        assert following is not None
        self.state["step"] = following

    def close(self) -> None:
        pass


def _pairs(
    url: str, feeder: Any, ours: Callable[[], None], theirs: Callable[[], None], pairs: int, messages: int
) -> dict[str, Any]:
    runs: dict[str, list[tuple[float, float]]] = {"sqs_loops": [], "hand_written": []}
    # A backlog that outlasts each trial (as it outlasts a 900-s step): ten messages more than either loop
    # takes, so the trial's last receive, or receive ahead, finds messages, as in a backlog, rather than
    # an empty queue's long poll.
    aws.fill(feeder, url, TAIL)
    for warm in (ours, theirs):  # the claim, handler import, connections: untimed
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
        "cpu_ratios": [round(r, 3) for r in cpu_ratios],
        "pairs": pairs,
        "messages_per_trial": messages,
    }
