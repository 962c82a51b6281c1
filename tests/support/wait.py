"""Polling with a deadline: the only way tests and fixtures wait for the cluster.

Tests never sleep to synchronise (docs/contributing.md); they poll a predicate until it
returns something truthy or the deadline passes, and the timeout error says what
was awaited and what the predicate saw last, so a failure explains itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """The awaited condition did not hold before the deadline."""


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.2,
    description: str = "condition",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``predicate`` until it returns a truthy value; return that value.

    ``ignore`` lists exception types treated as "not yet" (for example a 404
    while an object is still being created). The last falsy result or ignored
    exception is included in the ``WaitTimeout`` message.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = predicate()
        except ignore as exc:  # not there yet: remember why, keep polling
            last = exc
        else:
            if result:
                return result
            last = result
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {description}; last: {last!r}")
        # The interval is between polls, never the synchronisation itself.
        time.sleep(interval)
