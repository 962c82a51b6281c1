"""Which container images may run as local processes, and how their argv is adapted.

There is no container runtime on this machine: an image is only a key into an
`ImageMap` whose handlers turn a container's resolved command/args/env (a `Launch`)
into a local process, or refuse it with a reason. The reference images run their
command with this interpreter; `fti local` uses just those, the integration tests'
pod runner adds its own (a shell image, fakes).
"""

from __future__ import annotations

import fnmatch
import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

# The reference images run their command with this interpreter: they install
# fti_pipelines (and the operator) into their Python, and so does the local environment.
REFERENCE_IMAGES = ("fti-feature", "fti-training", "fti-inference", "fti-operator")


class UnsupportedImage(RuntimeError):
    """The container's image has no local equivalent; the message says why."""


@dataclass(frozen=True)
class Launch:
    """What to execute for one container; image handlers return a modified copy."""

    argv: list[str]
    env: dict[str, str]
    image: str
    container: Mapping[str, Any] = field(repr=False)  # the container spec (camelCase)
    pod: Mapping[str, Any] = field(repr=False)  # the whole pod (camelCase)

    def with_argv(self, argv: list[str]) -> Launch:
        return replace(self, argv=list(argv))

    def with_env(self, **extra: str) -> Launch:
        return replace(self, env={**self.env, **extra})


# A handler returns the Launch to run, or None (or raises UnsupportedImage) to refuse it.
Handler = Callable[[Launch], Launch | None]


def image_repository(image: str) -> str:
    """`registry:5000/repo:tag@sha256:...` -> `registry:5000/repo` (a port is not a tag)."""
    name = image.split("@", 1)[0]
    if name.rfind(":") > name.rfind("/"):
        name = name[: name.rfind(":")]
    return name


def _matches(pattern: str, repository: str) -> bool:
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(repository, pattern)
    return repository == pattern or repository.endswith("/" + pattern)


def python_image(launch: Launch) -> Launch:
    """Reference images: the container's `python` is this interpreter (so this virtualenv)."""
    argv = list(launch.argv)
    if not argv:
        raise UnsupportedImage(
            f"image {launch.image!r}: a local run needs an explicit command (the image's entrypoint is not known here)"
        )
    if os.path.basename(argv[0]) in ("python", "python3"):
        argv[0] = sys.executable
    env = {"PYTHONUNBUFFERED": "1", **launch.env}
    return replace(launch, argv=argv, env=env)


class ImageMap:
    """Ordered (pattern, handler) pairs; the most recently added match wins.

    A pattern is matched with fnmatch against the repository (the image without tag or
    digest); a pattern without wildcards also matches as the last path segments, so
    `fti-training` matches `ghcr.io/acme/fti-training:1.2` but not `acme/my-fti-training`.
    The reference images are mapped by default (`reference=False` for an empty map).
    """

    def __init__(self, reference: bool = True) -> None:
        self._entries: list[tuple[str, Handler]] = []
        self._lock = threading.Lock()
        if reference:
            for name in REFERENCE_IMAGES:
                self.add(name, python_image)

    def add(self, pattern: str, handler: Handler | None = None) -> Callable[[], None]:
        """Map `pattern` to `handler` (default: run argv as written); returns a remover."""
        entry = (pattern, handler or (lambda launch: launch))
        with self._lock:
            self._entries.append(entry)

        def remove() -> None:
            with self._lock:
                if entry in self._entries:
                    self._entries.remove(entry)

        return remove

    def lookup(self, image: str) -> Handler | None:
        repository = image_repository(image)
        with self._lock:
            entries = list(reversed(self._entries))
        return next((handler for pattern, handler in entries if _matches(pattern, repository)), None)

    def patterns(self) -> list[str]:
        with self._lock:
            return [pattern for pattern, _ in reversed(self._entries)]

    def resolve(self, launch: Launch) -> Launch:
        """The Launch to run, or UnsupportedImage with the reason."""
        handler = self.lookup(launch.image)
        if handler is None:
            raise UnsupportedImage(
                f"image {launch.image!r} is not mapped to a local program (mapped: {', '.join(self.patterns()) or 'nothing'})"
            )
        result = handler(launch)
        if result is None:
            raise UnsupportedImage(f"the local mapping for image {launch.image!r} refused this container")
        if not result.argv:
            raise UnsupportedImage(f"image {launch.image!r}: no command to run (set command/args in the pod spec)")
        return result
