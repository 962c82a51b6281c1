"""What a reconciler is given: the Kube interface, cross-resource lookups, config and a clock.

Drivers build one `Context` and call the reconcilers with it. Cross-resource reads (which
model versions exist, which feature-group versions are materialized, which revisions still
need a feature-group version) are `Lookups`: the Kopf driver answers them from its
indexes (no API request), the local driver by scanning its in-memory objects. Both call
the same pure functions of `fti_operator.versions` to turn objects into answers, so the
two drivers cannot disagree about them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from ..config import OperatorConfig
from ..versions import FeatureGroupAvailability, ModelInfo
from .kserve import KServeDefaults
from .kube import Kube


class Lookups(Protocol):
    def models(self, namespace: str, model: str) -> list[ModelInfo]:
        """Every known version of `model` in `namespace` (from TrainingPipelines' status)."""
        ...

    def availability(self, namespace: str, groups: Iterable[tuple[str, int]]) -> dict[tuple[str, int], FeatureGroupAvailability]:
        """(group, version) -> availability, for the feature-group versions asked about."""
        ...

    def needed(self, namespace: str, group: str) -> dict[tuple[str, int], list[str]]:
        """(group, version) -> 'namespace/name' of the InferenceServices whose revisions need it."""
        ...


class Metrics(Protocol):
    """What reconcilers report for Prometheus; the Kopf driver exports it on /metrics."""

    def feature_run(self, namespace: str, group: str, version: int, run: Mapping[str, Any]) -> None: ...
    def model_version(self, namespace: str, model: str, entry: Mapping[str, Any]) -> None: ...
    def served(self, namespace: str, name: str, stable: Mapping[str, Any] | None, canary: Mapping[str, Any] | None) -> None: ...
    def rollback(self, namespace: str, name: str, reason: str) -> None: ...
    def drift(self, namespace: str, name: str, revisions: list[Mapping[str, Any]]) -> None: ...


class NoMetrics:
    """`fti local` exports nothing."""

    def feature_run(self, namespace: str, group: str, version: int, run: Mapping[str, Any]) -> None:
        pass

    def model_version(self, namespace: str, model: str, entry: Mapping[str, Any]) -> None:
        pass

    def served(self, namespace: str, name: str, stable: Mapping[str, Any] | None, canary: Mapping[str, Any] | None) -> None:
        pass

    def rollback(self, namespace: str, name: str, reason: str) -> None:
        pass

    def drift(self, namespace: str, name: str, revisions: list[Mapping[str, Any]]) -> None:
        pass


@dataclass
class Result:
    """What one reconcile did ({action: count}, for logs and tests) and when to look again."""

    actions: dict[str, int] = field(default_factory=dict)
    # Reconcile this object again after so many seconds even if nothing changes (a readiness
    # deadline, a training schedule): the driver's timer, not a sleep.
    requeue_after: float | None = None

    def count(self, action: str, n: int = 1) -> None:
        self.actions[action] = self.actions.get(action, 0) + n

    def requeue_within(self, seconds: float) -> None:
        """Look again after `seconds` at the latest: several reasons to come back keep the soonest."""
        if self.requeue_after is None or seconds < self.requeue_after:
            self.requeue_after = seconds


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    kube: Kube
    lookups: Lookups
    config: OperatorConfig
    metrics: Metrics = field(default_factory=NoMetrics)
    clock: Callable[[], datetime] = utcnow
    # KServe's cluster-wide default deployment mode, read from its ConfigMap and cached.
    kserve_defaults: KServeDefaults = field(default_factory=KServeDefaults)
