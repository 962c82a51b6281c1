"""Operator configuration, read once from the environment (12-factor; the Helm chart sets it).

Everything a rendered child needs from the platform (store URIs, images, credential
Secret names) lives here, so renderers stay pure functions of (resource, versions, config).

Environment:
  FTI_ARTIFACT_STORE            artifact store URI given to every pipeline pod (file:///... | s3://...)
  FTI_ONLINE_STORE              online store URI (sqlite:///... | redis://...); optional
  FTI_ONLINE_STORE_SECRET       "secret:key" whose value becomes FTI_ONLINE_STORE in pods instead
                                (a redis:// URI with a password is a credential)
  FTI_STORE_CREDENTIALS_SECRET  name of a Secret injected with envFrom into every pipeline pod
                                (e.g. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for s3://)
  FTI_IMAGE_FEATURE / _TRAINING / _INFERENCE   image repositories (default ghcr.io/fti-dev/fti-*)
  FTI_IMAGE_TAG                 tag for the three images (default: the operator version)
  FTI_IMAGE_PULL_POLICY         IfNotPresent (default) | Always | Never
  FTI_NAMESPACES                comma-separated namespaces to watch; empty = cluster-wide
  FTI_METRICS_PORT              /metrics port (default 8080); 0 disables
  FTI_HEALTH_PORT               liveness/readiness port (default 8081); 0 disables
  FTI_PEERING                   Kopf peering name for leader election (default fti-operator); "" = standalone
  FTI_PEERING_PRIORITY          Kopf peering priority (default 0): an instance seeing a higher one pauses;
                                two of equal priority both freeze (never fight) — run one replica
  FTI_STORE_VOLUME_CLAIM        PVC mounted into pipeline pods at FTI_DATA_VOLUME_PATH: a file://
                                artifact store, a sqlite:// online store and batch input/output
                                files live under it
  FTI_STORE_RECHECK_SECONDS     how often a resource whose namespace lacks one of the Secrets or the
                                PVC above is checked again (default 30; reconcile/store_access.py)
  FTI_DATA_VOLUME_PATH          where that PVC is mounted (default /var/lib/fti; `fti local` maps
                                the same path to a local directory)
  FTI_PIPELINE_SERVICE_ACCOUNT  service account of pipeline pods (default: the namespace's default)
  FTI_JOB_TTL_SECONDS           ttlSecondsAfterFinished of Jobs (default 86400)
  FTI_JOB_BACKOFF_LIMIT         backoffLimit of Jobs (default 1)
  FTI_WORKERS                   reconcile worker threads (default 16): reconciles wait on the API
                                server far more than on CPU, so more workers mean more throughput
  FTI_LOG_LEVEL                 INFO (default) | DEBUG | WARNING
  FTI_KSERVE_NAMESPACE          namespace of KServe's inferenceservice-config (default kserve): its
                                defaultDeploymentMode says whether a canary can split traffic
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata

# The operator reads the store URIs under the same names it passes them on to pipelines.
from .api.identity import ENV_ARTIFACT_STORE, ENV_ONLINE_STORE


def _default_tag() -> str:
    try:
        return metadata.version("fti-operator")
    except metadata.PackageNotFoundError:  # running from a source checkout without install
        return "latest"


_operator_version = _default_tag()

DEFAULT_REGISTRY = "ghcr.io/fti-dev"
PULL_POLICIES = ("IfNotPresent", "Always", "Never")


class ConfigError(ValueError):
    """An environment variable with a value the operator cannot use; the message names it."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not an integer") from exc
    if value < minimum:
        raise ConfigError(f"{name}={value} must be >= {minimum}")
    return value


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str

    @classmethod
    def parse(cls, env_name: str, raw: str) -> SecretKeyRef:
        name, sep, key = raw.partition(":")
        if not sep or not name or not key:
            raise ConfigError(f"{env_name}={raw!r} must be 'secret-name:key'")
        return cls(name, key)


def _volume_claim(env: Mapping[str, str], artifact_store: str, mount_path: str) -> str | None:
    claim = env.get("FTI_STORE_VOLUME_CLAIM", "").strip() or None
    if claim and artifact_store.startswith("file://"):
        path = artifact_store[len("file://") :]
        if not (path + "/").startswith(mount_path + "/"):
            raise ConfigError(
                f"FTI_ARTIFACT_STORE={artifact_store!r} is not under FTI_DATA_VOLUME_PATH={mount_path!r}, "
                "where FTI_STORE_VOLUME_CLAIM is mounted: pipeline pods would not share it"
            )
    return claim


@dataclass(frozen=True)
class OperatorConfig:
    artifact_store: str = "file:///var/lib/fti/artifacts"
    online_store: str | None = None
    online_store_secret: SecretKeyRef | None = None
    store_credentials_secret: str | None = None
    store_volume_claim: str | None = None
    data_volume_path: str = "/var/lib/fti"
    # While a namespace lacks a configured Secret or the PVC, its resources are looked at again
    # this often, so creating the object lets them proceed without a spec change.
    store_recheck_seconds: int = 30
    image_feature: str = f"{DEFAULT_REGISTRY}/fti-feature"
    image_training: str = f"{DEFAULT_REGISTRY}/fti-training"
    image_inference: str = f"{DEFAULT_REGISTRY}/fti-inference"
    image_tag: str = _operator_version
    image_pull_policy: str = "IfNotPresent"
    namespaces: tuple[str, ...] = field(default_factory=tuple)
    metrics_port: int = 8080
    health_port: int = 8081
    peering: str | None = "fti-operator"
    peering_priority: int = 0
    pipeline_service_account: str | None = None
    job_ttl_seconds: int = 86400
    job_backoff_limit: int = 1
    workers: int = 16
    log_level: str = "INFO"
    # Where KServe's inferenceservice-config lives (its default deployment mode: docs/rollouts.md).
    kserve_namespace: str = "kserve"

    def image(self, kind: str) -> str:
        """Full image reference for 'feature' | 'training' | 'inference'."""
        repo = {"feature": self.image_feature, "training": self.image_training, "inference": self.image_inference}[kind]
        # A repository given with its own tag or digest wins over FTI_IMAGE_TAG.
        last = repo.rsplit("/", 1)[-1]
        if "@" in repo or ":" in last:
            return repo
        return f"{repo}:{self.image_tag}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        env = os.environ if env is None else env
        artifact_store = env.get(ENV_ARTIFACT_STORE, "").strip() or cls.artifact_store
        if "://" not in artifact_store:
            raise ConfigError(f"FTI_ARTIFACT_STORE={artifact_store!r} must be a URI like file:///data or s3://bucket/prefix")
        online = env.get(ENV_ONLINE_STORE, "").strip() or None
        if online and not online.startswith(("sqlite://", "redis://", "rediss://")):
            raise ConfigError(f"FTI_ONLINE_STORE={online!r} must be sqlite:///... or redis://...")
        online_secret_raw = env.get("FTI_ONLINE_STORE_SECRET", "").strip()
        pull = env.get("FTI_IMAGE_PULL_POLICY", "").strip() or "IfNotPresent"
        if pull not in PULL_POLICIES:
            raise ConfigError(f"FTI_IMAGE_PULL_POLICY={pull!r} must be one of {', '.join(PULL_POLICIES)}")
        data_volume_path = (env.get("FTI_DATA_VOLUME_PATH", "").strip() or cls.data_volume_path).rstrip("/")
        if not data_volume_path.startswith("/"):
            raise ConfigError(f"FTI_DATA_VOLUME_PATH={data_volume_path!r} must be an absolute path")
        namespaces = tuple(ns.strip() for ns in env.get("FTI_NAMESPACES", "").split(",") if ns.strip())
        peering = env.get("FTI_PEERING")
        return cls(
            artifact_store=artifact_store,
            online_store=online,
            online_store_secret=SecretKeyRef.parse("FTI_ONLINE_STORE_SECRET", online_secret_raw) if online_secret_raw else None,
            store_credentials_secret=env.get("FTI_STORE_CREDENTIALS_SECRET", "").strip() or None,
            store_volume_claim=_volume_claim(env, artifact_store, data_volume_path),
            data_volume_path=data_volume_path,
            store_recheck_seconds=_int(env, "FTI_STORE_RECHECK_SECONDS", 30, minimum=1),
            image_feature=env.get("FTI_IMAGE_FEATURE", "").strip() or cls.image_feature,
            image_training=env.get("FTI_IMAGE_TRAINING", "").strip() or cls.image_training,
            image_inference=env.get("FTI_IMAGE_INFERENCE", "").strip() or cls.image_inference,
            image_tag=env.get("FTI_IMAGE_TAG", "").strip() or cls.image_tag,
            image_pull_policy=pull,
            namespaces=namespaces,
            metrics_port=_int(env, "FTI_METRICS_PORT", 8080),
            health_port=_int(env, "FTI_HEALTH_PORT", 8081),
            peering=("fti-operator" if peering is None else (peering.strip() or None)),
            peering_priority=_int(env, "FTI_PEERING_PRIORITY", 0, minimum=-1_000_000),
            pipeline_service_account=env.get("FTI_PIPELINE_SERVICE_ACCOUNT", "").strip() or None,
            job_ttl_seconds=_int(env, "FTI_JOB_TTL_SECONDS", 86400),
            job_backoff_limit=_int(env, "FTI_JOB_BACKOFF_LIMIT", 1),
            workers=_int(env, "FTI_WORKERS", 16, minimum=1),
            log_level=(env.get("FTI_LOG_LEVEL", "").strip() or "INFO").upper(),
            kserve_namespace=env.get("FTI_KSERVE_NAMESPACE", "").strip() or cls.kserve_namespace,
        )
