"""Types shared by the three kinds: base model config, conditions, pod overrides, refs.

Field names are snake_case in Python and camelCase on the wire (the Kubernetes
convention), so `model_validate` takes a manifest as written and `wire()` gives it back.
CEL rules for the CRDs travel with the models as `x-kubernetes-validations` in the JSON
schema, so the server-side validation and the Python validation are declared together.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "fti.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Names that end up in Kubernetes object names, store paths and SQL identifiers.
IDENTIFIER_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
# module.path:function, importable inside the pipeline image.
CALLABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$"
DOTTED_PATH_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"
# A CEL-side approximation of a cron line (5 fields or a macro); croniter does the exact check.
CRON_PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$"
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"


def cel(rule: str, message: str, field_path: str | None = None, reason: str | None = None) -> dict[str, str]:
    """One `x-kubernetes-validations` entry."""
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    if reason:
        entry["reason"] = reason
    return entry


def cel_rules(*rules: dict[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


def _check_cron(value: str) -> str:
    if not croniter.is_valid(value):
        raise ValueError(f"{value!r} is not a valid cron schedule (5 fields, e.g. '*/15 * * * *')")
    return value


CronSchedule = Annotated[
    str,
    Field(pattern=CRON_PATTERN, description="Cron schedule in the CronJob syntax, e.g. '*/15 * * * *'. Absent: run once."),
    AfterValidator(_check_cron),
]
Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN, min_length=1, max_length=63)]
Version = Annotated[int, Field(ge=1, le=1_000_000, description="A positive integer version.")]


def parse_duration(value: str) -> float:
    """'10m', '1h30m', '45s', '500ms' -> seconds."""
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"{value!r} is not a duration like '10m', '90s' or '1h30m'")
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)", value))


class ApiModel(BaseModel):
    """Base of every spec/status model: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=True,
    )

    def wire(self) -> dict[str, Any]:
        """The camelCase JSON form, without unset/None fields (what goes to the API server)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class FeatureGroupRef(ApiModel):
    """A feature group at a pinned version."""

    name: Identifier = Field(description="Feature group name.")
    version: Version = Field(description="Feature group version.")

    @property
    def key(self) -> str:
        return f"{self.name}@v{self.version}"


class ResourceRequirements(ApiModel):
    requests: dict[str, str | int] | None = Field(default=None, description="Resource requests, e.g. {cpu: 500m, memory: 1Gi}.")
    limits: dict[str, str | int] | None = Field(default=None, description="Resource limits, e.g. {nvidia.com/gpu: 1}.")


class SecretKeySelector(ApiModel):
    name: str = Field(min_length=1)
    key: str = Field(min_length=1)


class EnvVarSource(ApiModel):
    secret_key_ref: SecretKeySelector | None = None
    config_map_key_ref: SecretKeySelector | None = None


class EnvVar(ApiModel):
    """An environment variable; credentials only by reference (valueFrom)."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    value: str | None = None
    value_from: EnvVarSource | None = None


class PodTemplate(ApiModel):
    """Overrides for the pods a kind creates."""

    image: str | None = Field(default=None, description="Container image; defaults to the operator's reference image for the pipeline.")
    resources: ResourceRequirements | None = None
    env: list[EnvVar] | None = Field(default=None, description="Extra environment; use valueFrom for secrets.")
    service_account_name: str | None = None
    node_selector: dict[str, str] | None = None


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """A condition in the Kubernetes API convention."""

    type: str
    status: ConditionStatus
    reason: str = Field(pattern=r"^[A-Z][A-Za-z0-9]*$", description="CamelCase reason.")
    message: str = ""
    last_transition_time: datetime | None = None
    observed_generation: int | None = None


class ObjectMeta(BaseModel):
    """The part of metadata the operator and the embedded runner read."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel)

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=52)
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    generation: int | None = None
    uid: str | None = None
    resource_version: str | None = None
