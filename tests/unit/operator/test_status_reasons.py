"""Every condition and Event reason the reconcilers can write is one the status schema accepts.

Status leaves a reconciler only through the typed status models (reconcile/writes.py `typed`),
whose Condition.reason is CamelCase, the same rule the generated CRD enforces. This test
finds every reason the code can produce — string literals and module constants passed to
`condition(...)`, `emit_event(...)`, the rollout plan's Progressing tuples and the serving
decision's reasons — and checks each against the models of all three kinds, so a new
reason that the API server would reject fails here, not in a cluster.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from fti_operator.api.feature_pipeline import FeaturePipelineStatus
from fti_operator.api.inference_service import InferenceServiceStatus
from fti_operator.api.training_pipeline import TrainingPipelineStatus
from fti_operator.reconcile.writes import typed

PACKAGE = Path(__file__).resolve().parents[3] / "operator" / "fti_operator"
SOURCES = sorted([*(PACKAGE / "reconcile").glob("*.py"), *(PACKAGE / "versions").glob("*.py")])
REASON = re.compile(r"^[A-Z][A-Za-z0-9]*$")


def _constants(tree: ast.Module) -> dict[str, str]:
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value.value
    return out


def _assigned(tree: ast.Module, constants: dict[str, str]) -> dict[str, set[str]]:
    """Local names bound to reason-like strings anywhere in the module (`verb = "A" if x else "B"`)."""
    out: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out.setdefault(target.id, set()).update(_strings(node.value, constants))
    return out


def _strings(node: ast.AST, constants: dict[str, str]) -> set[str]:
    """The string values an expression can take: literals, module constants, both arms of `a if c else b`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.Name) and node.id in constants:
        return {constants[node.id]}
    if isinstance(node, ast.IfExp):
        return _strings(node.body, constants) | _strings(node.orelse, constants)
    if isinstance(node, ast.JoinedStr):
        return set()  # formatted: an Event reason like f"{kind}Created" is checked by the kinds it takes
    return set()


def _local(node: ast.AST, local: dict[str, set[str]]) -> set[str]:
    return {v for v in local.get(node.id, set()) if REASON.match(v)} if isinstance(node, ast.Name) else set()


def reasons() -> dict[str, set[str]]:
    """reason -> the files that can write it."""
    every = {}
    all_constants: dict[str, str] = {}
    trees = {path: ast.parse(path.read_text()) for path in SOURCES}
    for tree in trees.values():
        all_constants.update(_constants(tree))
    for path, tree in trees.items():
        local = _assigned(tree, all_constants)
        for node in ast.walk(tree):
            found: set[str] = set()
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if (node.func.id == "condition" and len(node.args) >= 3) or (
                    node.func.id == "emit_event" and len(node.args) >= 3
                ):
                    found = _strings(node.args[2], all_constants)
            elif isinstance(node, ast.Tuple) and len(node.elts) == 3 and isinstance(node.elts[0], ast.Constant):
                first = node.elts[0].value
                # (status, reason, message): a Progressing condition; (type, reason, message): a rollout Event
                if isinstance(first, (bool, type(None))) or first in ("Normal", "Warning"):
                    found = _strings(node.elts[1], all_constants) or _local(node.elts[1], local)
            for reason in found:
                every.setdefault(reason, set()).add(path.name)
    # Reasons that travel as values: the serving decision's and the rollout's module constants.
    for name, value in all_constants.items():
        if name.isupper() and REASON.match(value) and name not in ("API_VERSION", "PLURAL"):
            every.setdefault(value, set()).add("constant")
    return every


def test_the_scan_finds_the_reasons_we_know_about() -> None:
    found = reasons()
    for known in (
        "RunSucceeded",
        "ModelValidated",
        "FeaturesNotReady",
        "RolledBack",
        "ProgressDeadlineExceeded",
        "CanaryInProgress",
        "WaitingForFeatures",
        "TrafficSplitUnsupported",
        "Rematerializing",
        "DeletionBlocked",
        "RolloutComplete",
        "Serving",
        "RolloutStarted",
        "RollbackRequested",
        "Promoted",
    ):
        assert known in found, known


@pytest.mark.parametrize("reason", sorted(reasons()))
@pytest.mark.parametrize("model", [FeaturePipelineStatus, TrainingPipelineStatus, InferenceServiceStatus])
def test_every_reason_is_accepted_by_the_status_schema(reason: str, model) -> None:
    assert REASON.match(reason), f"{reason!r} is not CamelCase: the API server would reject the status"
    status = {
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": reason,
                "message": "m",
                "lastTransitionTime": "2026-12-04T10:00:00Z",
                "observedGeneration": 1,
            }
        ]
    }
    assert typed(model, status)["conditions"][0]["reason"] == reason


def test_a_reason_the_schema_would_reject_cannot_leave_a_reconciler() -> None:
    with pytest.raises(ValueError, match="reason"):
        typed(InferenceServiceStatus, {"conditions": [{"type": "Ready", "status": "False", "reason": "not camel"}]})
