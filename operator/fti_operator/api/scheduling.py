"""The pods a kind creates: spec.template, and where they may run (tolerations, affinity,
topology spread, priority).

The same fields as a Pod spec (core/v1), typed here so a typo is rejected at admission
naming the field instead of surfacing as a Job whose pods never schedule; render/pods.py
copies them into every pod the kind creates. A GPU node pool is usually tainted
(`nvidia.com/gpu=present:NoSchedule`): a pod reaches it with a toleration, a GPU limit in
`resources` and, to land only there, a nodeSelector or node affinity (examples/gpu/).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .common import ApiModel, EnvVar, FieldError, ResourceRequirements, cel, cel_rules

# A label key as the API server accepts it: [DNS-subdomain prefix/]name, at most 317 characters.
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
LABEL_KEY_PATTERN = rf"^({_DNS_SUBDOMAIN}/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"


class Toleration(ApiModel):
    """A taint the pods tolerate (core/v1 Toleration)."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel("!(self.operator == 'Exists' && has(self.value))", "value must be empty when operator is Exists", "value"),
            cel("has(self.key) || self.operator == 'Exists'", "an empty key needs operator Exists", "operator"),
            cel(
                "!has(self.tolerationSeconds) || self.effect == 'NoExecute'",
                "tolerationSeconds only applies to effect NoExecute",
                "tolerationSeconds",
            ),
        )
    }

    key: str | None = Field(default=None, max_length=317, pattern=LABEL_KEY_PATTERN, description="Taint key; empty = all.")
    operator: Literal["Exists", "Equal"] = Field(default="Equal", description="Exists (any value) or Equal (value).")
    value: str | None = Field(default=None, max_length=63, description="Taint value, for operator Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to tolerate; empty = all."
    )
    toleration_seconds: int | None = Field(default=None, ge=0, description="NoExecute only: how long the pod stays bound.")

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise FieldError("value", "value must be empty when operator is Exists")
        if not self.key and self.operator != "Exists":
            raise FieldError("operator", "an empty key needs operator Exists")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise FieldError("tolerationSeconds", "tolerationSeconds only applies to effect NoExecute")
        return self


class Requirement(ApiModel):
    """A label or node-field requirement (key, operator, values)."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": cel_rules(
            cel(
                "(self.operator in ['Exists', 'DoesNotExist']) == (!has(self.values) || size(self.values) == 0)",
                "values must be empty for Exists and DoesNotExist and set for the other operators",
                "values",
            ),
        )
    }

    key: str = Field(min_length=1, max_length=317, pattern=LABEL_KEY_PATTERN, description="Label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"] = Field(description="How key and values relate.")
    values: list[str] | None = Field(default=None, max_length=64, description="Values for In, NotIn, Gt, Lt.")

    @model_validator(mode="after")
    def _values(self) -> Requirement:
        if (self.operator in ("Exists", "DoesNotExist")) != (not self.values):
            raise FieldError("values", "values must be empty for Exists and DoesNotExist and set for the other operators")
        return self


class LabelSelector(ApiModel):
    """Pods selected by labels (meta/v1 LabelSelector)."""

    match_labels: dict[str, str] | None = Field(default=None, max_length=32, description="Labels that must all match.")
    match_expressions: list[Requirement] | None = Field(default=None, max_length=16, description="Requirements, ANDed.")


class NodeSelectorTerm(ApiModel):
    """Node requirements, ANDed."""

    match_expressions: list[Requirement] | None = Field(default=None, max_length=16, description="On node labels.")
    match_fields: list[Requirement] | None = Field(default=None, max_length=16, description="On node fields.")


class NodeSelector(ApiModel):
    """Terms, ORed."""

    node_selector_terms: list[NodeSelectorTerm] = Field(min_length=1, max_length=16, description="Node selector terms.")


class PreferredSchedulingTerm(ApiModel):
    weight: int = Field(ge=1, le=100, description="Weight in [1, 100].")
    preference: NodeSelectorTerm = Field(description="The preferred nodes.")


class NodeAffinity(ApiModel):
    """Which nodes the pods must or should run on."""

    required_during_scheduling_ignored_during_execution: NodeSelector | None = Field(default=None, description="Hard.")
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTerm] | None = Field(
        default=None, max_length=16, description="Soft, weighted."
    )


class PodAffinityTerm(ApiModel):
    """Pods matching labelSelector (in namespaces) on the same topologyKey domain."""

    label_selector: LabelSelector | None = Field(default=None, description="The pods to be near (or away from).")
    namespaces: list[str] | None = Field(default=None, max_length=16, description="Their namespaces; empty = this one.")
    topology_key: str = Field(min_length=1, max_length=317, pattern=LABEL_KEY_PATTERN, description="Node label of the domain.")


class WeightedPodAffinityTerm(ApiModel):
    weight: int = Field(ge=1, le=100, description="Weight in [1, 100].")
    pod_affinity_term: PodAffinityTerm = Field(description="The term.")


class PodAffinity(ApiModel):
    """Co-location (podAffinity) or separation (podAntiAffinity) from other pods."""

    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] | None = Field(
        default=None, max_length=16, description="Hard."
    )
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] | None = Field(
        default=None, max_length=16, description="Soft, weighted."
    )


class Affinity(ApiModel):
    """core/v1 Affinity."""

    node_affinity: NodeAffinity | None = Field(default=None, description="Node affinity.")
    pod_affinity: PodAffinity | None = Field(default=None, description="Pod affinity.")
    pod_anti_affinity: PodAffinity | None = Field(default=None, description="Pod anti-affinity.")


class TopologySpreadConstraint(ApiModel):
    """Spread the pods across topology domains (core/v1 TopologySpreadConstraint)."""

    max_skew: int = Field(ge=1, description="Largest allowed difference of pod counts between domains.")
    topology_key: str = Field(min_length=1, max_length=317, pattern=LABEL_KEY_PATTERN, description="Node label of the domain.")
    when_unsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"] = Field(description="Hard or soft.")
    label_selector: LabelSelector | None = Field(default=None, description="The pods counted.")
    min_domains: int | None = Field(default=None, ge=1, description="DoNotSchedule only: minimum eligible domains.")


class PodTemplate(ApiModel):
    """Overrides for the pods a kind creates."""

    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="Container image; defaults to the operator's reference image for the pipeline.",
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="Container resources; GPUs as limits {nvidia.com/gpu: 1}."
    )
    env: list[EnvVar] | None = Field(default=None, max_length=64, description="Extra environment; use valueFrom for secrets.")
    service_account_name: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        max_length=253,
        description="ServiceAccount the pods run as (e.g. one with cloud storage access).",
    )
    node_selector: dict[str, str] | None = Field(default=None, max_length=32, description="Node labels the pods must land on.")
    tolerations: list[Toleration] | None = Field(
        default=None, max_length=32, description="Taints the pods tolerate, e.g. a GPU node pool's nvidia.com/gpu taint."
    )
    affinity: Affinity | None = Field(default=None, description="Node and pod (anti-)affinity of the pods.")
    priority_class_name: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        max_length=253,
        description="PriorityClass of the pods (it must exist in the cluster).",
    )
    topology_spread_constraints: list[TopologySpreadConstraint] | None = Field(
        default=None, max_length=8, description="How the pods spread across zones or nodes."
    )
