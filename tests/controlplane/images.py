"""Which local program stands in for a container image.

The pod runner has no container runtime: an image is only a key into an
``ImageMap`` whose handlers turn the container's command/args/env into a local
process (a ``Launch``), or refuse it. Tests add their own mappings; the defaults
run the reference pipeline images with this interpreter and give tests a shell
image.
"""

from __future__ import annotations

import fnmatch
import sys
import threading
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

SHELL_IMAGE = "fti.dev/test/shell"
PIPELINE_IMAGES = ("fti-feature", "fti-training", "fti-inference")


@dataclass(frozen=True)
class Launch:
    """What to execute for one container; handlers return a modified copy."""

    argv: list[str]
    env: dict[str, str]
    image: str
    container: dict = field(repr=False)  # the container spec (camelCase dict)
    pod: dict = field(repr=False)  # the whole pod (camelCase dict)

    def with_argv(self, argv: list[str]) -> "Launch":
        return replace(self, argv=list(argv))

    def with_env(self, **extra: str) -> "Launch":
        return replace(self, env={**self.env, **extra})


class Refused(Exception):
    """A handler cannot run this container; the message ends up in the pod status."""


# A handler returns the Launch to run, or None / raises Refused to refuse it.
Handler = Callable[[Launch], Optional[Launch]]


def repository(image: str) -> str:
    """``registry/repo:tag@sha256:...`` -> ``registry/repo`` (a port is not a tag)."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name = name[:colon]
    return name


class ImageMap:
    """Ordered (pattern, handler) pairs; the most recently added match wins.

    A pattern is matched with fnmatch against the repository (image without tag
    or digest); a pattern without wildcards also matches as the last path
    segments, so ``fti-training`` matches ``ghcr.io/acme/fti-training:1.2``.
    """

    def __init__(self) -> None:
        self._entries: list[tuple[str, Handler]] = []
        self._lock = threading.Lock()

    def add(self, pattern: str, handler: Handler) -> Callable[[], None]:
        """Register ``handler`` for ``pattern``; returns a function that removes it."""
        entry = (pattern, handler)
        with self._lock:
            self._entries.append(entry)

        def remove() -> None:
            with self._lock:
                if entry in self._entries:
                    self._entries.remove(entry)

        return remove

    def lookup(self, image: str) -> Handler | None:
        repo = repository(image)
        with self._lock:
            entries = list(reversed(self._entries))
        for pattern, handler in entries:
            if _matches(pattern, repo):
                return handler
        return None

    def resolve(self, launch: Launch) -> Launch:
        """The Launch to run, or raise Refused with the reason for the pod status."""
        handler = self.lookup(launch.image)
        if handler is None:
            raise Refused(f"image {launch.image!r} is not mapped to a local program by the test pod runner")
        result = handler(launch)
        if result is None:
            raise Refused(f"the local mapping for image {launch.image!r} refused this container")
        if not result.argv:
            raise Refused(f"image {launch.image!r}: no command to run (set command/args in the pod spec)")
        return result


def _matches(pattern: str, repo: str) -> bool:
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(repo, pattern)
    return repo == pattern or repo.endswith("/" + pattern)


# ----------------------------------------------------------------- defaults
def python_image(launch: Launch) -> Launch | None:
    """Pipeline images: the container's ``python`` is this test interpreter.

    The reference images install fti_pipelines into their Python; the test venv
    has it installed too, so ``python -m fti_pipelines...`` runs the same code.
    """
    argv = list(launch.argv)
    if not argv:
        raise Refused(f"image {launch.image!r}: the pod runner needs an explicit command (no image entrypoint)")
    if argv[0] in ("python", "python3") or argv[0].rsplit("/", 1)[-1] in ("python", "python3"):
        argv[0] = sys.executable
    return launch.with_argv(argv).with_env(PYTHONUNBUFFERED="1")


def shell_image(launch: Launch) -> Launch:
    """``fti.dev/test/shell``: like a busybox image whose entrypoint is ``sh -c``."""
    command = launch.container.get("command") or []
    if command:
        return launch  # an explicit command (e.g. ["sh", "-c", ...]) runs as written
    return launch.with_argv(["sh", "-c", *launch.argv])


def default_image_map() -> ImageMap:
    images = ImageMap()
    for name in PIPELINE_IMAGES:
        images.add(name, python_image)
    images.add(SHELL_IMAGE, shell_image)
    return images
