"""A deduplicating work queue for cross-resource reconciles (the controller-runtime pattern).

A model version turning Validated can concern hundreds of InferenceServices, and every
InferenceService that starts serving changes the retention of a feature group. Running
those reconciles inside the triggering event handler would block Kopf's workers on the
lock of a few hot objects; here a key is queued at most once, a key that changes while
being processed is processed once more afterwards, and a few threads work the queue.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Callable, Hashable

log = logging.getLogger(__name__)


class WorkQueue:
    retry_delay = 10.0

    def __init__(self, process: Callable[[Hashable], None], workers: int = 4, name: str = "fti-queue"):
        self._process = process
        self._pending: "OrderedDict[Hashable, None]" = OrderedDict()
        self._active: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._cond = threading.Condition()
        self._stopped = False
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    def add(self, key: Hashable) -> None:
        with self._cond:
            if key in self._active:
                self._dirty.add(key)  # reprocess after the running pass: it may have read stale state
            elif key not in self._pending:
                self._pending[key] = None
                self._cond.notify()

    def __len__(self) -> int:
        with self._cond:
            return len(self._pending) + len(self._active)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                key, _ = self._pending.popitem(last=False)
                self._active.add(key)
            try:
                self._process(key)
            except Exception:  # noqa: BLE001 - one bad object must not stop the queue
                log.exception("reconcile of %s failed; retrying in %ss", key, self.retry_delay)
                timer = threading.Timer(self.retry_delay, self.add, args=(key,))
                timer.daemon = True
                timer.start()
            finally:
                with self._cond:
                    self._active.discard(key)
                    if key in self._dirty:
                        self._dirty.discard(key)
                        self._pending[key] = None
                        self._cond.notify()
