"""The controller's work queue: dedup, re-add while processing, delayed adds, retries, stop.

No sleeps: workers are held on Events, delays run on a fake clock the test advances, and
results are awaited with wait_until (a deadline, not a guess).
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from fti_operator.controller.queue import WorkQueue
from support.wait import wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Gate:
    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()


class Recorder:
    """The queue's process(): records keys in order. The next pass of a `hold` key blocks until
    its gate is released; a key in `fail` raises that many times."""

    def __init__(self) -> None:
        self.seen: list = []
        self.gates: dict = {}
        self.fail: Counter = Counter()
        self._lock = threading.Lock()

    def hold(self, key) -> Gate:
        gate = self.gates[key] = Gate()
        return gate

    def __call__(self, key) -> None:
        with self._lock:
            gate = self.gates.pop(key, None)
        if gate:
            gate.started.set()
            assert gate.release.wait(10), f"{key} never released"
        with self._lock:
            self.seen.append(key)
            if self.fail[key] > 0:
                self.fail[key] -= 1
                raise RuntimeError(f"reconcile of {key} failed")

    def count(self, key) -> int:
        with self._lock:
            return self.seen.count(key)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def queue(rec, clock):
    q = WorkQueue(rec, workers=1, clock=clock, retry_base=2.0, retry_max=5.0)
    yield q
    for gate in list(rec.gates.values()):
        gate.release.set()
    q.stop(timeout=10)


def drained(q: WorkQueue, rec: Recorder, barrier: str = "barrier") -> None:
    """Everything pending before now has been processed: one worker, FIFO, so a barrier key suffices."""
    n = rec.count(barrier)
    q.add(barrier)
    wait_until(lambda: rec.count(barrier) > n and len(q) == 0, timeout=10, interval=0.01, description="queue drained")


def held(q: WorkQueue, rec: Recorder, key="gate") -> Gate:
    """The single worker busy on `key` until the returned gate is released."""
    gate = rec.hold(key)
    q.add(key)
    assert gate.started.wait(10)
    return gate


def advance(q: WorkQueue, clock: FakeClock, seconds: float) -> None:
    clock.now += seconds
    q.wake()


def test_a_waiting_key_is_processed_once(queue, rec):
    gate = held(queue, rec)
    for key in ("x", "x", "y", "x", "x"):
        queue.add(key)
    assert len(queue) == 3  # gate (active), x and y waiting
    gate.release.set()
    drained(queue, rec)
    assert rec.seen == ["gate", "x", "y", "barrier"]


def test_a_key_added_while_processing_runs_once_more_afterwards(queue, rec):
    gate = held(queue, rec, "a")
    queue.add("a")
    queue.add("a")
    assert len(queue) == 1  # not pending beside the running pass: no two workers on one key
    gate.release.set()
    wait_until(lambda: rec.count("a") == 2 and len(queue) == 0, timeout=10, interval=0.01, description="a again")
    drained(queue, rec)
    assert rec.count("a") == 2  # two adds during the pass: one more pass, not two


def test_no_two_workers_process_one_key(rec, clock):
    q = WorkQueue(rec, workers=3, clock=clock)
    try:
        gate = held(q, rec, "a")
        q.add("a")
        q.add("b")
        wait_until(lambda: rec.count("b") == 1, timeout=10, interval=0.01, description="b on another worker")
        assert rec.count("a") == 0  # the re-add waits for the running pass
        gate.release.set()
        wait_until(lambda: rec.count("a") == 2 and len(q) == 0, timeout=10, interval=0.01, description="a twice")
    finally:
        q.stop(timeout=10)


def test_delayed_adds_run_in_due_order(queue, rec, clock):
    queue.add_after("late", 10)
    queue.add_after("early", 5)
    assert len(queue) == 0 and queue.delayed() == {"late": 10, "early": 5}
    advance(queue, clock, 4)
    drained(queue, rec)
    assert rec.seen == ["barrier"]
    advance(queue, clock, 1)
    wait_until(lambda: rec.count("early") == 1, timeout=10, interval=0.01, description="early due")
    assert rec.count("late") == 0
    advance(queue, clock, 5)
    wait_until(lambda: rec.count("late") == 1, timeout=10, interval=0.01, description="late due")
    assert rec.seen == ["barrier", "early", "late"] and queue.delayed() == {}


def test_the_earliest_of_several_delays_wins(queue, rec, clock):
    queue.add_after("k", 10)
    queue.add_after("k", 3)
    queue.add_after("k", 7)
    assert queue.delayed() == {"k": 3}
    advance(queue, clock, 3)
    wait_until(lambda: rec.count("k") == 1, timeout=10, interval=0.01, description="k due")
    advance(queue, clock, 10)  # the superseded delays (7, 10) do not run it again
    drained(queue, rec)
    assert rec.count("k") == 1


def test_a_delay_is_dropped_beside_a_pending_immediate_add(queue, rec, clock):
    gate = held(queue, rec)
    queue.add("k")
    queue.add_after("k", 5)  # k runs soon anyway: that run decides when it wants the next one
    assert queue.delayed() == {}
    gate.release.set()
    drained(queue, rec)
    advance(queue, clock, 5)
    drained(queue, rec)
    assert rec.count("k") == 1


def test_processing_a_key_supersedes_its_delayed_add(queue, rec, clock):
    queue.add_after("k", 5)
    queue.add("k")
    drained(queue, rec)
    assert rec.count("k") == 1 and queue.delayed() == {}
    advance(queue, clock, 5)
    drained(queue, rec)
    assert rec.count("k") == 1


def test_a_delay_asked_for_during_processing_is_kept(queue, rec, clock):
    """Result.requeue_after: the reconcile itself asks to run again later."""
    gate = held(queue, rec, "k")
    queue.add_after("k", 30)
    gate.release.set()
    drained(queue, rec)
    assert queue.delayed() == {"k": 30}
    advance(queue, clock, 30)
    wait_until(lambda: rec.count("k") == 2, timeout=10, interval=0.01, description="k again after 30 s")


def test_a_failed_reconcile_is_retried_with_backoff(queue, rec, clock):
    rec.fail["bad"] = 3
    queue.add("bad")
    wait_until(lambda: queue.failures("bad") == 1, timeout=10, interval=0.01, description="first failure")
    assert queue.delayed() == {"bad": 2.0}
    advance(queue, clock, 2)
    wait_until(lambda: queue.failures("bad") == 2, timeout=10, interval=0.01, description="second failure")
    assert queue.delayed() == {"bad": 4.0}  # doubled
    advance(queue, clock, 4)
    wait_until(lambda: queue.failures("bad") == 3, timeout=10, interval=0.01, description="third failure")
    assert queue.delayed() == {"bad": 5.0}  # capped at retry_max
    advance(queue, clock, 5)
    wait_until(
        lambda: rec.count("bad") == 4 and queue.failures("bad") == 0,
        timeout=10,
        interval=0.01,
        description="success resets the backoff",
    )
    assert queue.delayed() == {}


def test_an_immediate_add_does_not_wait_for_a_retry(queue, rec, clock):
    rec.fail["bad"] = 1
    queue.add("bad")
    wait_until(lambda: queue.failures("bad") == 1, timeout=10, interval=0.01, description="failure")
    queue.add("bad")  # a new event: reconcile now, not after the backoff
    wait_until(
        lambda: rec.count("bad") == 2 and queue.failures("bad") == 0, timeout=10, interval=0.01, description="retried at once"
    )
    assert queue.delayed() == {}


def test_stop_lets_the_running_pass_finish_and_takes_no_more(rec, clock):
    q = WorkQueue(rec, workers=2, clock=clock)
    gate = held(q, rec, "running")
    q.add("waiting")
    wait_until(lambda: rec.count("waiting") == 1, timeout=10, interval=0.01, description="other worker free")
    q.add_after("later", 1)
    stopper = threading.Thread(target=q.stop, kwargs={"timeout": 10})
    stopper.start()
    wait_until(lambda: q.stopped, timeout=10, interval=0.01, description="stop requested")
    q.add("after-stop")
    gate.release.set()
    stopper.join(10)
    assert not stopper.is_alive() and q.alive() == 0
    assert rec.seen == ["waiting", "running"]
    advance(q, clock, 5)
    assert q.delayed() == {} and len(q) == 0
