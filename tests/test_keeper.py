"""The keeper threads: one per invocation, armed batch by batch (poller/loop/keeper.py)."""

from __future__ import annotations

import threading
import time

from poller.loop.keeper import THREAD_NAME, KeeperThread


def _keepers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == THREAD_NAME}


def test_one_thread_serves_every_batch_and_ticks_only_while_armed() -> None:
    # Compared by identity: a keeper another test on this worker closed may still be ending.
    before = _keepers()
    keeper = KeeperThread(interval_s=0.02, log_fields={})
    ticks: list[int] = []
    assert not _keepers() - before  # nothing started before the first batch
    served_by: set[threading.Thread] = set()
    for batch in range(5):
        with keeper.keeping(lambda batch=batch: ticks.append(batch)):
            deadline = time.monotonic() + 5
            while batch not in ticks and time.monotonic() < deadline:
                time.sleep(0.005)
            started = _keepers() - before
            assert len(started) == 1
            served_by |= started
        ended = len(ticks)
        time.sleep(0.06)  # three intervals: a disarmed keeper calls nothing
        assert len(ticks) == ended
    assert len(served_by) == 1  # the same thread for every batch
    assert sorted(set(ticks)) == [0, 1, 2, 3, 4]
    keeper.close()
    (thread,) = served_by
    thread.join(5)
    assert not thread.is_alive()


def test_the_end_of_a_batch_waits_for_its_tick_in_flight() -> None:
    keeper = KeeperThread(interval_s=0.01, log_fields={})
    started, finished = threading.Event(), threading.Event()

    def slow_tick() -> None:
        started.set()
        time.sleep(0.2)
        finished.set()

    with keeper.keeping(slow_tick):
        assert started.wait(5)
    assert finished.is_set()  # the batch's give-back cannot be undone by its own extension
    keeper.close()


def test_a_tick_that_raises_does_not_stop_the_keeper() -> None:
    keeper = KeeperThread(interval_s=0.01, log_fields={})
    calls: list[int] = []

    def failing() -> None:
        calls.append(1)
        raise RuntimeError("SQS said no")

    with keeper.keeping(failing):
        deadline = time.monotonic() + 5
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
    assert len(calls) >= 3
    keeper.close()
