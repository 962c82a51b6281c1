"""Typed spec/status models of the three kinds in fti.dev/v1alpha1; crds/ is generated from them.

The names (group, version, kinds, labels, annotations, contract env) live in `identity`.
"""

from .common import ApiModel, Condition, FeatureGroupRef, parse_duration
from .feature_pipeline import (
    Expectation,
    FeatureGroupSpec,
    FeaturePipeline,
    FeaturePipelineSpec,
    FeaturePipelineStatus,
    SourceSpec,
    ValidationSpec,
)
from .identity import API_VERSION, GROUP, VERSION
from .inference_service import InferenceService, InferenceServiceSpec, InferenceServiceStatus, Revision
from .manifests import KINDS, ManifestError, Resource, load_manifests, parse_resource
from .scheduling import PodTemplate
from .training_pipeline import FeatureViewSpec, ModelVersionStatus, TrainingPipeline, TrainingPipelineSpec, TrainingPipelineStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "KINDS",
    "VERSION",
    "ApiModel",
    "Condition",
    "Expectation",
    "FeatureGroupRef",
    "FeatureGroupSpec",
    "FeaturePipeline",
    "FeaturePipelineSpec",
    "FeaturePipelineStatus",
    "FeatureViewSpec",
    "InferenceService",
    "InferenceServiceSpec",
    "InferenceServiceStatus",
    "ManifestError",
    "ModelVersionStatus",
    "PodTemplate",
    "Resource",
    "Revision",
    "SourceSpec",
    "TrainingPipeline",
    "TrainingPipelineSpec",
    "TrainingPipelineStatus",
    "ValidationSpec",
    "load_manifests",
    "parse_duration",
    "parse_resource",
]
