"""What code and which host paths a manifest names: the trust model (docs/security.md).

Whoever may create these resources chooses code that runs in the pipeline pods: the
callables below are imported and called there, the image is theirs to name. `fti local
apply` runs the same callables on the user's host and reads and writes its `file://` paths,
so it says which ones before running a manifest whose code is not the project's own.
"""

from __future__ import annotations

from dataclasses import dataclass

from .feature_pipeline import FeaturePipeline
from .inference_service import InferenceService
from .training_pipeline import TrainingPipeline

Resource = FeaturePipeline | TrainingPipeline | InferenceService

# Code that ships with the project (the reference pipelines, the fraud example) or the
# estimators the reference training image is built to import.
KNOWN_MODULE_PREFIXES = ("fti_pipelines.", "sklearn.")


@dataclass(frozen=True)
class Use:
    """One callable or location a resource will use: `what` says how (field path), `value` which."""

    resource: str  # Kind/name
    what: str
    value: str

    @property
    def known(self) -> bool:
        return self.value.startswith(KNOWN_MODULE_PREFIXES)


def callables(resource: Resource) -> list[Use]:
    """The importable code the pipeline pods (or `fti local`) will run for this resource."""
    name = f"{resource.kind}/{resource.metadata.name}"
    found: list[tuple[str, str | None]] = []
    if isinstance(resource, FeaturePipeline):
        generator = resource.spec.source.generator
        found += [("spec.source.generator.function", generator.function if generator else None)]
        found += [("spec.transform", resource.spec.transform)]
    elif isinstance(resource, TrainingPipeline):
        model = resource.spec.model
        found += [("spec.model.estimator", model.estimator), ("spec.model.entrypoint", model.entrypoint)]
    return [Use(name, what, value) for what, value in found if value]


def images(resource: Resource) -> list[Use]:
    template = resource.spec.template
    image = template.image if template else None
    return [Use(f"{resource.kind}/{resource.metadata.name}", "spec.template.image", image)] if image else []


def file_locations(resource: Resource) -> list[Use]:
    """The file:// URIs the resource reads or writes (host paths when run by `fti local`)."""
    name = f"{resource.kind}/{resource.metadata.name}"
    found: list[tuple[str, str | None]] = []
    if isinstance(resource, FeaturePipeline):
        found.append(("spec.source.uri", resource.spec.source.uri))
    elif isinstance(resource, InferenceService) and resource.spec.batch:
        batch = resource.spec.batch
        found += [("spec.batch.input.uri", batch.input.uri), ("spec.batch.output.uri", batch.output.uri)]
    return [Use(name, what, uri) for what, uri in found if uri and uri.startswith("file://")]
