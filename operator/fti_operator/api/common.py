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
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

# GROUP, VERSION and API_VERSION stay importable from here (and from fti_operator.api).
from .identity import API_VERSION as API_VERSION, CONTRACT_ENV_PREFIX, GROUP as GROUP, VERSION as VERSION

# Names that end up in Kubernetes object names, store paths and SQL identifiers.
IDENTIFIER_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
# module.path:function, importable inside the pipeline image.
CALLABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$"
DOTTED_PATH_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
URI_PATTERN = r"^(file|s3|gs|az|memory)://.+"
FILE_URI_MESSAGE = "a file URI needs an absolute path after file:// (three slashes: file:///data/raw/)"
CHAINED_URI_MESSAGE = "chained URIs (a::b) are not supported: give one location"
# RFC 3339 with a time zone: what the CRD's `date-time` format accepts (a bare date or a
# time without an offset is refused there, so it is refused here too).
DATE_TIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
DATE_TIME_MESSAGE = "must be an RFC 3339 date-time with a time zone, like 2026-09-01T00:00:00Z"
# metadata.name of our objects: a DNS-1035 label (KServe requires the leading letter),
# at most 52 characters like a CronJob's, so children can carry it.
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
MAX_NAME_LENGTH = 52
NAME_MESSAGE = (
    f"metadata.name must be at most {MAX_NAME_LENGTH} characters of a-z, 0-9 and '-', "
    "starting with a letter and ending with a letter or digit"
)


def _cron_field(value: str, names: str = "") -> str:
    """One cron field: *, ?, values, ranges, lists and steps (robfig/cron's standard syntax)."""
    atom = f"({value}{'|' + names if names else ''})"
    item = rf"(\*|{atom}(-{atom})?)(/[1-9][0-9]{{0,1}})?"
    return rf"{item}(,{item})*"


_MONTHS = "|".join(
    m + "|" + m.lower() for m in ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
)
_DAYS = "|".join(d + "|" + d.lower() for d in ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])
# What both the Kubernetes CronJob controller (robfig/cron ParseStandard) and croniter accept:
# five fields with in-range values, or a macro. One regex, used by the CRD's CEL rule and by
# the Python validator, so a cluster and the embedded runner reject the same schedules.
CRON_PATTERN = (
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|"
    + r"\s+".join(
        [
            _cron_field(r"[0-5]?[0-9]"),  # minute 0-59
            _cron_field(r"[01]?[0-9]|2[0-3]"),  # hour 0-23
            r"(\?|" + _cron_field(r"0?[1-9]|[12][0-9]|3[01]") + ")",  # day of month 1-31
            _cron_field(r"0?[1-9]|1[0-2]", _MONTHS),  # month 1-12
            r"(\?|" + _cron_field(r"[0-6]", _DAYS) + ")",  # day of week 0-6 (Sunday = 0)
        ]
    )
    + r")$"
)
CRON_MESSAGE = (
    "schedule must be a cron expression with 5 fields in range "
    "(minute hour day-of-month month day-of-week, e.g. '*/15 * * * *') or a macro like @hourly"
)


class FieldError(ValueError):
    """A cross-field check failing on one named sub-field (camelCase, relative to the model).

    manifests.format_validation_error appends `field` to the error location, so the
    Python message names the same path as the CRD's CEL rule with that fieldPath.
    """

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def cel(rule: str, message: str, field_path: str | None = None, reason: str | None = None) -> dict[str, str]:
    """One `x-kubernetes-validations` entry; `field_path` is relative to the rule's object."""
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path if field_path.startswith(".") else "." + field_path
    if reason:
        entry["reason"] = reason
    return entry


def cel_rules(*rules: dict[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


def _check_cron(value: str) -> str:
    # croniter is the second opinion: it is what the embedded runner schedules with.
    if not re.fullmatch(CRON_PATTERN, value) or not croniter.is_valid(value):
        raise ValueError(f"{CRON_MESSAGE}; got {value!r}")
    return value


CronSchedule = Annotated[
    str,
    Field(
        max_length=128,
        description=(
            "Cron schedule in the CronJob syntax (5 fields, e.g. '*/15 * * * *', or @hourly/@daily/...). Absent: run once."
        ),
        json_schema_extra=cel_rules(cel(f"self.matches({CRON_PATTERN!r})", CRON_MESSAGE)),
    ),
    AfterValidator(_check_cron),
]
Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN, min_length=1, max_length=63)]


def _check_uri(value: str) -> str:
    if value.startswith("file:") and not re.match(r"^file:///[^/]", value):
        raise ValueError(f"{FILE_URI_MESSAGE}; got {value!r}")
    if "::" in value:
        raise ValueError(f"{CHAINED_URI_MESSAGE}; got {value!r}")
    return value


# A storage location: one file:///absolute/path or an object-store prefix (fsspec opens it).
Uri = Annotated[
    str,
    Field(
        pattern=URI_PATTERN,
        max_length=1024,
        json_schema_extra=cel_rules(
            cel("!self.startsWith('file:') || self.matches('^file:///[^/]')", FILE_URI_MESSAGE),
            cel("!self.contains('::')", CHAINED_URI_MESSAGE),
        ),
    ),
    AfterValidator(_check_uri),
]


def uri_parts(uri: str) -> list[str]:
    """A URI's non-empty '/'-separated parts: file:///a/b/ and file:///a//b are one location."""
    return [p for p in uri.split("/") if p]


def no_repeats(values: list[Any] | None) -> list[Any] | None:
    """A list the CRD declares as a set (`x-kubernetes-list-type: set`): the API server refuses repeats."""
    seen: set[Any] = set()
    for v in values or []:
        if v in seen:
            raise ValueError(f"Duplicate value: {v!r} is listed twice (the list is a set)")
        seen.add(v)
    return values


def _date_time(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(DATE_TIME_PATTERN, value):
        raise ValueError(f"{DATE_TIME_MESSAGE}; got {value!r}")
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError(f"{DATE_TIME_MESSAGE}; got one without a time zone ({value.isoformat()})")
    return value


# A point in time in a spec: always time-zone aware, so two of them always compare.
DateTime = Annotated[datetime, BeforeValidator(_date_time), Field(strict=False)]
Version = Annotated[int, Field(ge=1, le=1_000_000, description="A positive integer version.")]


def parse_duration(value: str) -> float:
    """'10m', '1h30m', '45s', '500ms' -> seconds."""
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"{value!r} is not a duration like '10m', '90s' or '1h30m'")
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)", value))


class ApiModel(BaseModel):
    """Base of every spec model: camelCase on the wire, unknown fields rejected.

    Strict types: the API server does not turn "2" into 2 or "yes" into true, so
    neither do we; a manifest the embedded runner accepts is one a cluster accepts.
    (Timestamps are `DateTime`: an RFC 3339 string with a time zone, parsed.)
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=True,
        strict=True,
    )

    def wire(self) -> dict[str, Any]:
        """The camelCase JSON form, without unset/None fields (what goes to the API server)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class StatusModel(ApiModel):
    """Base of status models: written by the operator from JSON results, so types are lax
    (a numpy integer or a JSON number is fine) and fields added by a newer operator are kept."""

    model_config = ApiModel.model_config | {"strict": False, "extra": "ignore"}


class FeatureGroupRef(ApiModel):
    """A feature group at a pinned version."""

    name: Identifier = Field(description="Feature group name.")
    version: Version = Field(description="Feature group version.")

    @property
    def key(self) -> str:
        return f"{self.name}@v{self.version}"


# A Kubernetes quantity ("500m", "1Gi", 2): the API server's own syntax, checked here so a
# typo fails at admission rather than when the operator creates the Job.
QUANTITY_PATTERN = r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+)?$"
MAX_QUANTITY_LENGTH = 64
# As controller-gen writes resource.Quantity: int-or-string with a pattern (applied to strings)
# and a minimum (applied to numbers); a CEL rule here would cost more than the API server allows.
Quantity = Annotated[
    int | str,
    Field(
        json_schema_extra={
            "x-kubernetes-int-or-string": True,
            "pattern": QUANTITY_PATTERN,
            "minimum": 0,
            # Bounds the cost of the CEL rules that read the values.
            "maxLength": MAX_QUANTITY_LENGTH,
        }
    ),
]
QUANTITY_MESSAGE = "should match a Kubernetes quantity such as 500m, 1Gi or 2"


# What a container may request: the standard names, or an extended resource (a domain-prefixed
# name) that the scheduler counts in whole units.
STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
EXTENDED_RESOURCE_PATTERN = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,}/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
RESOURCE_NAME_MESSAGE = (
    "resource names are cpu, memory, ephemeral-storage, hugepages-<size> or an extended resource like nvidia.com/gpu"
)
EXTENDED_INTEGER_MESSAGE = "extended resources like nvidia.com/gpu are counted in whole units: give an integer"
_STANDARD = f"k in {list(STANDARD_RESOURCES)} || k.startsWith('hugepages-')"
RESOURCE_RULES = cel_rules(
    cel(f"self.all(k, {_STANDARD} || k.matches({EXTENDED_RESOURCE_PATTERN!r}))", RESOURCE_NAME_MESSAGE),
    cel(f"self.all(k, {_STANDARD} || string(self[k]).matches('^[+]?[0-9]+$'))", EXTENDED_INTEGER_MESSAGE),
)


def _standard(key: str) -> bool:
    return key in STANDARD_RESOURCES or key.startswith("hugepages-")


def _check_quantities(values: dict[str, Any] | None) -> dict[str, Any] | None:
    for key, v in (values or {}).items():
        if not _standard(key) and not re.fullmatch(EXTENDED_RESOURCE_PATTERN, key):
            raise ValueError(f"{RESOURCE_NAME_MESSAGE}; got {key!r}")
        if isinstance(v, int) and v < 0:
            raise FieldError(key, "should be greater than or equal to 0")
        if isinstance(v, str) and len(v) > MAX_QUANTITY_LENGTH:
            raise FieldError(key, f"may not be longer than {MAX_QUANTITY_LENGTH}")
        if isinstance(v, str) and not re.fullmatch(QUANTITY_PATTERN, v):
            raise FieldError(key, f"{QUANTITY_MESSAGE} (pattern {QUANTITY_PATTERN!r})")
        if not _standard(key) and not re.fullmatch(r"[+]?[0-9]+", str(v)):
            raise ValueError(f"{EXTENDED_INTEGER_MESSAGE}; got {key}: {v!r}")
    return values


class ResourceRequirements(ApiModel):
    """Requests and limits of the pipeline container, as in a Pod spec (GPUs as nvidia.com/gpu)."""

    requests: dict[str, Quantity] | None = Field(
        default=None,
        max_length=16,
        description="Resource requests, e.g. {cpu: 500m, memory: 1Gi}.",
        json_schema_extra=RESOURCE_RULES,
    )
    limits: dict[str, Quantity] | None = Field(
        default=None,
        max_length=16,
        description="Resource limits, e.g. {memory: 2Gi, nvidia.com/gpu: 1}.",
        json_schema_extra=RESOURCE_RULES,
    )

    _requests = field_validator("requests", "limits")(_check_quantities)


class SecretKeySelector(ApiModel):
    """A key of a Secret or ConfigMap in the object's namespace."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Secret (or ConfigMap).")
    key: str = Field(min_length=1, max_length=253, description="Key inside it.")


class EnvVarSource(ApiModel):
    """Where an environment variable's value comes from."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel(
                "has(self.secretKeyRef) != has(self.configMapKeyRef)",
                "exactly one of secretKeyRef and configMapKeyRef must be set",
            ),
        )
    }

    secret_key_ref: SecretKeySelector | None = Field(default=None, description="A key of a Secret (credentials go here).")
    config_map_key_ref: SecretKeySelector | None = Field(default=None, description="A key of a ConfigMap.")

    @model_validator(mode="after")
    def _one_of(self) -> EnvVarSource:
        if (self.secret_key_ref is None) == (self.config_map_key_ref is None):
            raise ValueError("exactly one of secretKeyRef and configMapKeyRef must be set")
        return self


class EnvVar(ApiModel):
    """An environment variable; credentials only by reference (valueFrom)."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel("has(self.value) != has(self.valueFrom)", "exactly one of value and valueFrom must be set"),
            cel(
                f"!self.name.startsWith('{CONTRACT_ENV_PREFIX}')",
                "FTI_* variables are set by the operator (the pipeline contract)",
                "name",
            ),
        )
    }

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128, description="Variable name.")
    value: str | None = Field(default=None, max_length=32768, description="A literal value (never a credential).")
    value_from: EnvVarSource | None = Field(default=None, description="A value from a Secret or ConfigMap key.")

    @model_validator(mode="after")
    def _one_of(self) -> EnvVar:
        if (self.value is None) == (self.value_from is None):
            raise ValueError("exactly one of value and valueFrom must be set")
        if self.name.startswith(CONTRACT_ENV_PREFIX):
            raise FieldError("name", "FTI_* variables are set by the operator (the pipeline contract)")
        return self


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(StatusModel):
    """A condition in the Kubernetes API convention."""

    type: str = Field(description="Condition type, e.g. Ready.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(pattern=r"^[A-Z][A-Za-z0-9]*$", description="CamelCase reason.")
    message: str = Field(default="", description="Human-readable detail.")
    last_transition_time: datetime | None = Field(default=None, description="When status last changed.")
    observed_generation: int | None = Field(default=None, description="The metadata.generation this condition was computed for.")


class ObjectMeta(BaseModel):
    """The part of metadata the operator and the embedded runner read."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel)

    name: str = Field(description="Object name; see NAME_MESSAGE.")
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    generation: int | None = None
    uid: str | None = None
    resource_version: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        # The same check as the CRD's root CEL rule (crd.py), with the same message.
        if len(v) > MAX_NAME_LENGTH or not re.fullmatch(NAME_PATTERN, v):
            raise ValueError(f"{NAME_MESSAGE}; got {v!r}")
        return v
