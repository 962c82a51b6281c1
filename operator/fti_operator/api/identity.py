"""Every name the operator and the pipelines agree on, defined once.

The API group and version, the three kinds and their plurals, the KServe resource the
online children are, the labels and annotations on our objects and children, the
finalizers, and the pipeline contract's environment (docs/pipeline-contract.md). The
API models, the renderers, the drivers and the pipeline images import these names
instead of spelling the strings again, so renaming one is one edit here and a test
(tests/unit/operator/test_identity.py) checks that what the operator renders is what
the pipelines read.

Plain constants and one small dataclass, standard library only: nothing here may depend
on the rest of the operator.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# --- API group and version -------------------------------------------------------------

GROUP = "fti.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "fti"  # `kubectl get fti` lists the three kinds


@dataclass(frozen=True)
class KindNames:
    """How the API server and kubectl name one kind."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]

    @property
    def crd_name(self) -> str:
        """metadata.name of the kind's CustomResourceDefinition."""
        return f"{self.plural}.{GROUP}"


# The kind names alone, for `Literal[...]` annotations in the API models.
KIND_FEATURE_PIPELINE = "FeaturePipeline"
KIND_TRAINING_PIPELINE = "TrainingPipeline"
KIND_INFERENCE_SERVICE = "InferenceService"

FEATURE_PIPELINE = KindNames(KIND_FEATURE_PIPELINE, "featurepipelines", "featurepipeline", ("fp",))
TRAINING_PIPELINE = KindNames(KIND_TRAINING_PIPELINE, "trainingpipelines", "trainingpipeline", ("tp",))
# Not "isvc": that short name belongs to KServe's InferenceService.
INFERENCE_SERVICE = KindNames(KIND_INFERENCE_SERVICE, "inferenceservices", "inferenceservice", ("fisvc",))

KINDS: tuple[KindNames, ...] = (FEATURE_PIPELINE, TRAINING_PIPELINE, INFERENCE_SERVICE)
BY_KIND: dict[str, KindNames] = {k.kind: k for k in KINDS}
PLURALS: dict[str, str] = {k.kind: k.plural for k in KINDS}

# --- KServe: the child an online InferenceService renders ----------------------------------

KSERVE_GROUP = "serving.kserve.io"
KSERVE_VERSION = "v1beta1"
KSERVE_API_VERSION = f"{KSERVE_GROUP}/{KSERVE_VERSION}"
KSERVE_KIND = "InferenceService"
KSERVE_PLURAL = "inferenceservices"

# --- Labels on children (and their pods) ----------------------------------------------------

MANAGED_BY = "fti-operator"  # value of LABEL_MANAGED_BY, and the server-side-apply field manager
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_KIND = f"{GROUP}/kind"  # lower-case kind of the owning resource
LABEL_RESOURCE = f"{GROUP}/resource"  # name of the owning resource
LABEL_COMPONENT = f"{GROUP}/component"  # feature | training | online | batch | monitoring
LABEL_FG_VERSION = f"{GROUP}/feature-group-version"
LABEL_MODEL_VERSION = f"{GROUP}/model-version"
LABEL_FV_VERSION = f"{GROUP}/feature-view-version"
# On training Jobs: which feature view (name and version) they read, as a digest, since a view's
# name may not be a valid label value. Lets the immutability check list only the Jobs that ran
# the same view version instead of every training Job of the namespace (docs/store-layout.md).
LABEL_FEATURE_VIEW_KEY = f"{GROUP}/feature-view-key"
# The Job controller labels every pod with its Job's name (Kubernetes >= 1.27): the run id of
# CronJob-created runs, whose Job name the operator does not choose.
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"

# --- Annotations ----------------------------------------------------------------------------

# On children: hash of the rendered spec, labels and owner; a child whose hash matches is not rewritten.
ANNOTATION_SPEC_HASH = f"{GROUP}/spec-hash"
# On our resources, set by users: `fti.dev/run=<token>` runs a pipeline now, once per token.
# Copied onto the run-now Job of a FeaturePipeline.
ANNOTATION_RUN = f"{GROUP}/run"
# On online/batch inference children: the InferenceService revision number they serve.
ANNOTATION_REVISION = f"{GROUP}/revision"
# On training Jobs: why the run exists, so a run can be read back from its Job after a crash
# that happened before status recorded it.
ANNOTATION_TRAINING_HASH = f"{GROUP}/training-hash"
# Created | SpecChanged | Scheduled | RunNow on training Jobs; also a label (run-now) on a
# FeaturePipeline's run-now Job.
ANNOTATION_TRIGGER = f"{GROUP}/trigger"
ANNOTATION_RUN_TOKEN = f"{GROUP}/run-token"  # the fti.dev/run token a training Job answers
# On a TrainingPipeline, set by the operator beside the fti.dev/run token it sets when drift asks
# for retraining: JSON {"token", "trigger": "Drift", "by"}; a run answering that token records the
# trigger, and its Job carries ANNOTATION_TRIGGERED_BY (docs/monitoring.md).
ANNOTATION_RUN_CAUSE = f"{GROUP}/run-cause"
ANNOTATION_TRIGGERED_BY = f"{GROUP}/triggered-by"
# On a retired feature-group version's CronJob: the operator suspended it (a user's own
# `suspend` is told apart), and resumes it when a revision needs the version again.
ANNOTATION_RETIRED = f"{GROUP}/retired"
# Where operators before status.lastRun kept a TrainingPipeline's run; read, never written.
ANNOTATION_LAST_RUN = f"{GROUP}/last-run"
# Rollout requests on an InferenceService, set by users (docs/rollouts.md).
ANNOTATION_ROLLBACK = f"{GROUP}/rollback"
ANNOTATION_PROMOTE = f"{GROUP}/promote"
ANNOTATION_ABORT = f"{GROUP}/abort"
ANNOTATION_RETRY = f"{GROUP}/retry"

# --- Finalizers -----------------------------------------------------------------------------

# On a FeaturePipeline exactly while a served or retained revision reads one of its versions
# (docs/versions.md): deleting it waits until no revision needs those feature versions.
FINALIZER_FEATURE_VERSIONS = f"{GROUP}/feature-versions-in-use"
# Kopf's own finalizer name (the controller driver sets it in its settings).
FINALIZER_KOPF = f"{GROUP}/finalizer"

# --- The pipeline contract (docs/pipeline-contract.md) ---------------------------------------

ENV_SPEC = "FTI_SPEC"  # JSON of the resolved spec (camelCase)
ENV_ARTIFACT_STORE = "FTI_ARTIFACT_STORE"  # file:///... | s3://...
ENV_ONLINE_STORE = "FTI_ONLINE_STORE"  # sqlite:///... | redis://...
ENV_NAMESPACE = "FTI_NAMESPACE"  # namespace of the owning resource
ENV_RESOURCE = "FTI_RESOURCE"  # name of the owning resource
ENV_RUN_ID = "FTI_RUN_ID"  # identifies the run (the Job name in a cluster)
ENV_RESOURCE_UID = "FTI_RESOURCE_UID"  # training: metadata.uid of the owning resource
ENV_MODEL_VERSION = "FTI_MODEL_VERSION"  # training: the model version the operator expects (the registry allocates)
ENV_RUN_TIME = "FTI_RUN_TIME"  # RFC 3339 time the run stands for (default: now)
ENV_TERMINATION_LOG = "FTI_TERMINATION_LOG"  # where the result goes (default TERMINATION_LOG)

# On the model server when spec.monitoring.logging is set: JSON {"uri", "sampleRate",
# "flushSeconds"} saying where and how often to log predictions (docs/monitoring.md).
ENV_PREDICTION_LOG = "FTI_PREDICTION_LOG"

CONTRACT_ENV = frozenset(
    {
        ENV_SPEC,
        ENV_ARTIFACT_STORE,
        ENV_ONLINE_STORE,
        ENV_NAMESPACE,
        ENV_RESOURCE,
        ENV_RUN_ID,
        ENV_RESOURCE_UID,
        ENV_MODEL_VERSION,
        ENV_RUN_TIME,
        ENV_TERMINATION_LOG,
    }
)
# Contract variables the operator leaves unset on purpose: the run time defaults to "now" in
# the pipeline and the termination log to TERMINATION_LOG, which is what the kubelet reads.
CONTRACT_ENV_DEFAULTED = frozenset({ENV_RUN_TIME, ENV_TERMINATION_LOG})
# The user's spec.template.env may not set these (the CRD rejects FTI_* altogether).
CONTRACT_ENV_PREFIX = "FTI_"

# Where a pipeline writes its one JSON result; the kubelet copies it into the pod status.
TERMINATION_LOG = "/dev/termination-log"
# The kubelet keeps at most this many bytes of a termination message.
TERMINATION_MESSAGE_LIMIT = 4096


def feature_view_key(name: str, version: int) -> str:
    """Label value naming a feature view version: a short digest, always a valid label value."""
    return "fv-" + hashlib.sha256(f"{name}@{version}".encode()).hexdigest()[:20]
