"""One served revision: the model card, the model, the lookup plan and the checks.

`Revision.load()` never raises for a problem the operator or the user can fix: it
records `Problem`s and leaves `ready` False, so the server stays up, not ready, and
says why (docs/versions.md). Missing online features are the one transient problem (a
feature pipeline may still be materializing), so readiness re-checks them at most
every `recheck_seconds`; a mismatched feature view or an unvalidated model never
becomes ready.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..registry import ModelNotFound, ModelRegistry
from ..store.artifacts import ArtifactStore
from ..store.online import EntityReaders, open_online_store, transient_errors
from ..store.tenancy import namespace_store
from .config import ServingConfig
from .lookup import FeatureLookup, entity_reads
from .metrics import RevisionMetrics
from .plan import LookupPlan, PlanError, build_plan
from .skew import Problem, check_card, check_defaults, check_online_store, key_kinds

log = logging.getLogger("fti_pipelines.serving")

TRANSIENT = {"FeaturesNotMaterialized", "OnlineStoreUnavailable"}


def load_card_and_model(store: ArtifactStore, name: str, version: int, *, with_model: bool = True) -> tuple[Any, dict]:
    """(pipeline or None, card) through the model registry (docs/store-layout.md)."""
    registry = ModelRegistry(store)
    if with_model:
        pipeline, card = registry.load(name, version)
        return pipeline, card
    return None, registry.card(name, version)


class Revision:
    """Everything a server needs to answer for (model version, feature-view version)."""

    def __init__(
        self,
        config: ServingConfig,
        artifact_store: str,
        online_store: str | None,
        *,
        with_model: bool = True,
        with_lookup: bool = True,
        recheck_seconds: float = 5.0,
    ):
        self.config = config
        self.artifact_store_uri = artifact_store
        self.online_store_uri = online_store
        self.with_model = with_model
        self.with_lookup = with_lookup
        self.recheck_seconds = recheck_seconds
        self.ready = False
        self.problems: list[Problem] = []
        self.card: dict = {}
        self.pipeline: Any = None
        self.plan: LookupPlan | None = None
        self.store: Any = None
        self.lookup: FeatureLookup | None = None
        self.metrics: RevisionMetrics | None = None
        self._checked_at = 0.0
        self._readers: EntityReaders | None = None
        # What "the online store is unreachable for now" looks like is the backend's to say.
        self._store_down = transient_errors(online_store)

    @property
    def reason(self) -> str:
        return "; ".join(str(p) for p in self.problems)

    def load(self) -> bool:
        self._checked_at = time.monotonic()
        self.problems = []
        try:
            self._load()
        except PlanError as exc:
            self.problems.append(Problem(exc.reason, exc.message))
        except ModelNotFound as exc:
            self.problems.append(Problem("ModelNotFound", str(exc)))
        except FileNotFoundError as exc:
            self.problems.append(
                Problem(
                    "ModelNotFound",
                    f"model {self.config.model_name} v{self.config.model_version} is not in {self.artifact_store_uri}: {exc}",
                )
            )
        except self._store_down as exc:  # the online store is unreachable: keep retrying from readiness
            self.store = None
            self.problems.append(Problem("OnlineStoreUnavailable", f"{self.online_store_uri}: {exc}"))
        except Exception as exc:
            log.exception("loading %s failed", self.config.name)
            self.problems.append(Problem("LoadFailed", f"{type(exc).__name__}: {exc}"))
        self.ready = not self.problems
        if self.metrics is not None:
            self.metrics.ready.set(1 if self.ready else 0)
        if self.ready:
            log.info(
                "serving %s: model %s v%d with feature view %s v%d",
                self.config.name,
                self.config.model_name,
                self.config.model_version,
                self.config.feature_view_name,
                self.config.feature_view_version,
            )
        else:
            log.error("NOT READY %s: %s", self.config.name, self.reason)
        return self.ready

    def _load(self) -> None:
        cfg = self.config
        store = namespace_store(self.artifact_store_uri, cfg.namespace)
        if self.pipeline is None or not self.card:
            self.pipeline, self.card = load_card_and_model(store, cfg.model_name, cfg.model_version, with_model=self.with_model)
        self.problems.extend(check_card(self.card, cfg))
        if not self.with_lookup:
            return
        plan = build_plan(self.card, cfg)
        if plan.groups and not self.online_store_uri:
            self.problems.append(Problem("OnlineStoreMissing", "FTI_ONLINE_STORE is not set; the lookup needs it"))
            return
        if self.store is None and self.online_store_uri:
            self.store = open_online_store(self.online_store_uri, cfg.namespace)
        if self.store is not None:
            self.problems.extend(check_online_store(plan, self.store))
            if not self.problems:  # key dtypes as stored: the request's key types are checked against them
                plan = build_plan(self.card, cfg, key_dtypes=key_kinds(plan, self.store))
        self.problems.extend(check_defaults(plan, cfg))
        self.plan = plan
        if self.metrics is None:
            self.metrics = RevisionMetrics(cfg.revision_labels, [g.label for g in plan.groups])
        reader = complete = None
        if not self.problems and self.store is not None and plan.groups:
            self._readers = self._readers or self.store.prepared_readers()
            readers = self._readers or self.store
            reader = readers.entity_reader(entity_reads(plan))
            complete = readers.complete_reader(entity_reads(plan))
        self.lookup = FeatureLookup(
            plan,
            self.store,
            missing_entity=cfg.online.missing_entity,
            defaults=cfg.online.defaults,
            max_instances=cfg.max_instances,
            metrics=self.metrics,
            reader=reader,
            complete_reader=complete,
        )

    def recheck(self) -> bool:
        """Retry a transient failure (features still materializing), rate-limited."""
        if self.ready:
            return True
        if not self.problems or not all(p.reason in TRANSIENT for p in self.problems):
            return False
        if time.monotonic() - self._checked_at < self.recheck_seconds:
            return False
        return self.load()
