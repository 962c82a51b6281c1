"""One identity: the names the operator renders are the names the pipelines read.

The pipeline contract (docs/pipeline-contract.md) is environment in, termination message
out. Every child the operator renders for each kind is checked against what
`fti_pipelines.contract` reads, both ways, with all names from `fti_operator.api.identity`;
and the sources that must take their names from identity are checked for spelled-out copies.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fti_operator.api import FeaturePipeline, InferenceService, TrainingPipeline, crd as crdgen, identity as ids
from fti_operator.config import OperatorConfig, SecretKeyRef
from fti_operator.render import feature, inference, training
from fti_operator.render.inference import ResolvedPair
from fti_pipelines import contract

from .fixtures_resources import FP, ISVC_BATCH, ISVC_ONLINE, TP, variant

CONFIG = OperatorConfig(artifact_store="s3://ml/fti", online_store="redis://redis:6379/0", image_tag="1.2.3")
PAIR = ResolvedPair(
    revision=3,
    model_name="fraud",
    model_version=4,
    feature_view_name="fraud",
    feature_view_version=1,
    storage_uri="s3://ml/fti/models/fraud/4/model",
)
CRON_JOB_NAME = "card-transactions-v2-29000000"  # what the Job controller would name a CronJob's run

# (case, resource body, rendered child, the model version the run must see)
CHILDREN: dict[str, tuple[dict, Any, int | None]] = {
    "feature-cronjob": (FP, lambda: feature.render(FeaturePipeline.model_validate(FP), CONFIG, owner=FP), None),
    "feature-once-job": (
        FP,
        lambda: feature.render(FeaturePipeline.model_validate(variant(FP, "spec.schedule", None)), CONFIG, owner=FP),
        None,
    ),
    "feature-run-now-job": (FP, lambda: feature.render_run_now(FeaturePipeline.model_validate(FP), CONFIG, "t1", owner=FP), None),
    "training-job": (TP, lambda: training.render(TrainingPipeline.model_validate(TP), 4, CONFIG, owner=TP), 4),
    "inference-combined": (
        ISVC_ONLINE,
        lambda: inference.render_online(InferenceService.model_validate(ISVC_ONLINE), PAIR, CONFIG, owner=ISVC_ONLINE),
        None,
    ),
    "inference-transformer": (
        ISVC_ONLINE,
        lambda: inference.render_online(
            InferenceService.model_validate(variant(ISVC_ONLINE, "spec.online.topology", "transformer")),
            PAIR,
            CONFIG,
            owner=ISVC_ONLINE,
        ),
        None,
    ),
    "inference-batch-cronjob": (
        ISVC_BATCH,
        lambda: inference.render_batch(InferenceService.model_validate(ISVC_BATCH), PAIR, CONFIG, owner=ISVC_BATCH),
        None,
    ),
}


def pod_spec(child: dict) -> dict:
    if child["kind"] == "CronJob":
        return child["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return child["spec"]["template"]["spec"]


def pipeline_containers(child: dict) -> list[dict]:
    """The containers running a reference pipeline (KServe's stock sklearn server is not one)."""
    if child["apiVersion"] == ids.KSERVE_API_VERSION:
        spec = child["spec"]
        return [c for part in ("predictor", "transformer") for c in (spec.get(part) or {}).get("containers", [])]
    return pod_spec(child)["containers"]


def resolve_env(container: dict, namespace: str) -> dict[str, str]:
    """The environment the kubelet would give the container (references resolved to stand-ins)."""
    out: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            out[item["name"]] = item["value"]
            continue
        source = item["valueFrom"]
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            out[item["name"]] = {"metadata.namespace": namespace, f"metadata.labels['{ids.JOB_NAME_LABEL}']": CRON_JOB_NAME}[path]
        else:
            out[item["name"]] = f"secret:{source['secretKeyRef']['name']}/{source['secretKeyRef']['key']}"
    return out


def contract_names(container: dict) -> set[str]:
    return {e["name"] for e in container["env"] if e["name"].startswith(ids.CONTRACT_ENV_PREFIX)}


def test_contract_module_reads_the_identity_names():
    for name in (
        "ENV_SPEC",
        "ENV_ARTIFACT_STORE",
        "ENV_ONLINE_STORE",
        "ENV_NAMESPACE",
        "ENV_RESOURCE",
        "ENV_RUN_ID",
        "ENV_RESOURCE_UID",
        "ENV_MODEL_VERSION",
        "ENV_RUN_TIME",
        "ENV_TERMINATION_LOG",
    ):
        assert getattr(contract, name) == getattr(ids, name)
    assert contract.DEFAULT_TERMINATION_LOG == ids.TERMINATION_LOG
    assert contract.TERMINATION_MESSAGE_LIMIT == ids.TERMINATION_MESSAGE_LIMIT
    assert ids.CONTRACT_ENV_DEFAULTED < ids.CONTRACT_ENV
    assert all(n.startswith(ids.CONTRACT_ENV_PREFIX) for n in ids.CONTRACT_ENV)


@pytest.mark.parametrize("case", sorted(CHILDREN))
def test_rendered_containers_set_only_contract_names(case):
    _, render, model_version = CHILDREN[case]
    containers = pipeline_containers(render())
    assert containers, f"{case}: no pipeline container"
    for c in containers:
        names = contract_names(c)
        # Operator -> pipeline: nothing outside the contract.
        assert names <= contract.READS, f"{case}: {names - contract.READS} set but never read by a pipeline"
        # Pipeline -> operator: everything the operator is responsible for is set; the rest defaults on purpose.
        # The model version and the owner's uid (which the registry records) are training's only.
        training_only = {ids.ENV_MODEL_VERSION, ids.ENV_RESOURCE_UID}
        required = contract.READS - ids.CONTRACT_ENV_DEFAULTED - (training_only if model_version is None else set())
        assert required <= names, f"{case}: the pipeline reads {required - names}, the operator does not set it"
        assert not names & ids.CONTRACT_ENV_DEFAULTED, f"{case}: sets a variable the contract defaults"


def test_every_contract_name_is_used_by_some_child():
    """Vice versa over all kinds: a name in the contract no child sets (nor defaults) is dead."""
    rendered: set[str] = set()
    for _, render, _ in CHILDREN.values():
        for c in pipeline_containers(render()):
            rendered |= contract_names(c)
    assert rendered | ids.CONTRACT_ENV_DEFAULTED == contract.READS


@pytest.mark.parametrize("case", sorted(CHILDREN))
def test_pipeline_parses_what_the_operator_renders(case):
    body, render, model_version = CHILDREN[case]
    child = render()
    meta = body["metadata"]
    for c in pipeline_containers(child):
        env = resolve_env(c, meta["namespace"])
        ctx = contract.PipelineContext.from_env(env)
        assert ctx.namespace == meta["namespace"] and ctx.resource == meta["name"]
        assert ctx.artifact_store == CONFIG.artifact_store and ctx.online_store == CONFIG.online_store
        assert ctx.run_id and ctx.run_id != "local"
        assert ctx.model_version == model_version
        assert ctx.spec == json.loads(env[ids.ENV_SPEC])
        if child["kind"] in ("Job", "CronJob"):
            # The result comes back where the pipeline writes it and the kubelet reads it.
            assert c["terminationMessagePath"] == contract.DEFAULT_TERMINATION_LOG == ids.TERMINATION_LOG


def test_online_store_from_a_secret_is_still_the_contract_name():
    config = OperatorConfig(artifact_store="s3://ml/fti", online_store_secret=SecretKeyRef("redis", "uri"))
    child = feature.render(FeaturePipeline.model_validate(FP), config, owner=FP)
    (c,) = pipeline_containers(child)
    env = resolve_env(c, "fraud")
    assert contract.PipelineContext.from_env(env).online_store == "secret:redis/uri"


@pytest.mark.parametrize("case", sorted(CHILDREN))
def test_children_carry_identity_labels_and_owner(case):
    body, render, _ = CHILDREN[case]
    child = render()
    labels = child["metadata"]["labels"]
    assert labels[ids.LABEL_MANAGED_BY] == ids.MANAGED_BY
    assert labels[ids.LABEL_KIND] == body["kind"].lower() == ids.BY_KIND[body["kind"]].singular
    assert labels[ids.LABEL_RESOURCE] == body["metadata"]["name"]
    (owner,) = child["metadata"]["ownerReferences"]
    assert owner["apiVersion"] == ids.API_VERSION and owner["kind"] in ids.BY_KIND


def test_crds_use_the_identity_names():
    for names in ids.KINDS:
        c = crdgen.crd(names.kind)
        assert c["metadata"]["name"] == names.crd_name
        assert c["spec"]["group"] == ids.GROUP and [v["name"] for v in c["spec"]["versions"]] == [ids.VERSION]
        assert c["spec"]["names"] == {
            "kind": names.kind,
            "listKind": f"{names.kind}List",
            "plural": names.plural,
            "singular": names.singular,
            "shortNames": list(names.short_names),
            "categories": [ids.CATEGORY],
        }
    assert {m.__name__ for m in (FeaturePipeline, TrainingPipeline, InferenceService)} == set(ids.BY_KIND)


# --- no copies: the modules that must import their names from identity spell none of them ------

OPERATOR = Path(ids.__file__).resolve().parents[1]
PIPELINES = Path(contract.__file__).resolve().parent
# The drivers still being rewritten (local/) adopt identity as they land; everything else already
# takes its names from it.
CHECKED = [
    *sorted((OPERATOR / "api").glob("*.py")),
    *sorted((OPERATOR / "render").glob("*.py")),
    *sorted((OPERATOR / "versions").glob("*.py")),
    OPERATOR / "config.py",
    *sorted((OPERATOR / "controller").glob("*.py")),
    OPERATOR / "__main__.py",
    OPERATOR / "cli.py",
    OPERATOR / "rollout_cli.py",
    *sorted(PIPELINES.rglob("*.py")),
]
IDENTITY_VALUES = {
    value
    for name, value in vars(ids).items()
    if name.isupper()
    and isinstance(value, str)
    and (value.startswith(f"{ids.GROUP}/") or name.startswith("ENV_") or name in ("API_VERSION", "KSERVE_API_VERSION", "GROUP"))
} | {k.plural for k in ids.KINDS}


def string_constants(tree: ast.AST) -> Iterator[ast.Constant]:
    """String literals that are not docstrings."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node


@pytest.mark.parametrize("path", [p for p in CHECKED if p.name != "identity.py"], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_module_spells_an_identity_name(path):
    copies = [
        f"{path.name}:{node.lineno}: {node.value!r}"
        for node in string_constants(ast.parse(path.read_text()))
        if node.value in IDENTITY_VALUES
    ]
    assert not copies, "import these from fti_operator.api.identity:\n" + "\n".join(copies)
