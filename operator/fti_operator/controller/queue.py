"""A deduplicating work queue with delayed re-adds: the controller-runtime pattern.

Watch events only enqueue keys; a few worker threads reconcile them. The rules, and why:
- A key waits in the queue at most once: ten events for one object while it waits cost one
  reconcile (the reconcile is level-based, it reads the newest state anyway).
- A key added while it is being processed is processed once more afterwards (that pass may
  have read state older than the event), never by two workers at once: a reconcile of one
  object never races itself, so no per-object lock is needed.
- `add_after(key, seconds)` is `Result.requeue_after` (a readiness deadline, the next
  scheduled training run): a timer, not a sleeping thread or a periodic sweep of every
  object. Of several delayed adds of one key the earliest wins; a key that is processed
  drops its delayed add, because every reconcile says anew when it wants to run again.
- A reconcile that raises is retried with exponential backoff (a conflict or a restarting
  API server usually clears in a second; a persistent error must not spin). Success resets it.

The clock is injectable so tests drive the delays without sleeping (docs/architecture.md).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

log = logging.getLogger(__name__)


class WorkQueue:
    def __init__(
        self,
        process: Callable[[Hashable], None],
        workers: int = 4,
        name: str = "fti-queue",
        clock: Callable[[], float] = time.monotonic,
        retry_base: float = 1.0,
        retry_max: float = 120.0,
    ):
        self._process = process
        self._clock = clock
        self.retry_base, self.retry_max = retry_base, retry_max
        self._pending: OrderedDict[Hashable, None] = OrderedDict()
        self._active: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._due: dict[Hashable, float] = {}  # key -> when its delayed add is due
        self._heap: list[tuple[float, int, Hashable]] = []  # (due, seq, key); stale entries skipped
        self._seq = itertools.count()
        self._failures: dict[Hashable, int] = {}
        self._cond = threading.Condition()
        self._stopped = False
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    # -- adding ------------------------------------------------------------------------------
    def add(self, key: Hashable) -> None:
        with self._cond:
            self._add_locked(key)

    def _add_locked(self, key: Hashable) -> None:
        if self._stopped:
            return
        if key in self._active:
            self._dirty.add(key)  # reprocess after the running pass: it may have read stale state
        elif key not in self._pending:
            self._pending[key] = None
            self._cond.notify()

    def add_after(self, key: Hashable, seconds: float) -> None:
        """Add `key` once `seconds` have passed (now if <= 0); the earliest of several delays wins."""
        with self._cond:
            self._add_after_locked(key, seconds)

    def _add_after_locked(self, key: Hashable, seconds: float) -> None:
        if seconds <= 0:
            self._add_locked(key)
            return
        if self._stopped or key in self._pending:
            return  # it runs soon anyway, and that run says anew when it wants the next one
        due = self._clock() + seconds
        if key in self._due and self._due[key] <= due:
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._seq), key))
        # A worker may be waiting for a later due time (or forever): wake one to recompute.
        self._cond.notify()

    def wake(self) -> None:
        """Re-check due times now (after a test advanced its fake clock)."""
        with self._cond:
            self._cond.notify_all()

    # -- introspection -----------------------------------------------------------------------
    def __len__(self) -> int:
        """Keys waiting or being processed now (delayed adds not counted)."""
        with self._cond:
            return len(self._pending) + len(self._active)

    def delayed(self) -> dict[Hashable, float]:
        """key -> seconds until its delayed add is due."""
        with self._cond:
            now = self._clock()
            return {k: due - now for k, due in self._due.items()}

    def failures(self, key: Hashable) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    # -- stopping ----------------------------------------------------------------------------
    def stop(self, timeout: float | None = None) -> None:
        """No more work is taken; running reconciles finish (joined up to `timeout` seconds)."""
        with self._cond:
            self._stopped = True
            self._pending.clear()
            self._due.clear()
            self._heap.clear()
            self._cond.notify_all()
        if timeout is not None:
            deadline = time.monotonic() + timeout
            for t in self._threads:
                if t is not threading.current_thread():
                    t.join(max(0.0, deadline - time.monotonic()))

    @property
    def stopped(self) -> bool:
        return self._stopped

    def alive(self) -> int:
        return sum(t.is_alive() for t in self._threads)

    # -- working -----------------------------------------------------------------------------
    def _promote_due(self) -> float | None:
        """Move due delayed keys to pending; seconds until the next one is due (None: none left)."""
        now = self._clock()
        while self._heap:
            due, _, key = self._heap[0]
            if self._due.get(key) != due:
                heapq.heappop(self._heap)  # superseded by an earlier add_after, or dropped
                continue
            if due > now:
                return due - now
            heapq.heappop(self._heap)
            del self._due[key]
            self._add_locked(key)
        return None

    def _next(self) -> Hashable | None:
        with self._cond:
            while True:
                if self._stopped:
                    return None
                wait = self._promote_due()
                if self._pending:
                    key, _ = self._pending.popitem(last=False)
                    self._active.add(key)
                    # This pass supersedes the key's delayed add (see the module docstring).
                    self._due.pop(key, None)
                    return key
                self._cond.wait(wait)

    def _work(self) -> None:
        while (key := self._next()) is not None:
            error: Exception | None = None
            try:
                self._process(key)
            except Exception as exc:  # noqa: BLE001 - one bad object must not stop the queue
                error = exc
            with self._cond:
                self._active.discard(key)
                if key in self._dirty:  # an event came while it ran: now, not after a backoff
                    self._dirty.discard(key)
                    self._add_locked(key)
                if error is None:
                    self._failures.pop(key, None)
                    continue
                n = self._failures[key] = self._failures.get(key, 0) + 1
                delay = min(self.retry_max, self.retry_base * 2 ** (n - 1))
                self._add_after_locked(key, delay)  # with the count: one state, never half-updated
            log.error("reconcile of %s failed (%d in a row); retrying in %.0fs", key, n, delay, exc_info=error)
