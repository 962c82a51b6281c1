"""ApiError: which refusals are permanent (no retry) and which are not."""

from __future__ import annotations

import json

from fti_operator.reconcile.kube import ApiError


def status_body(reason: str, cause: str | None = None) -> str:
    details = {"causes": [{"reason": cause, "message": "..."}]} if cause else {}
    return json.dumps({"kind": "Status", "status": "Failure", "reason": reason, "details": details})


def test_create_in_a_terminating_namespace_is_permanent() -> None:
    assert ApiError(403, "Forbidden", status_body("Forbidden", "NamespaceTerminating")).namespace_terminating


def test_other_refusals_are_retried() -> None:
    assert not ApiError(403, "Forbidden", status_body("Forbidden")).namespace_terminating  # RBAC, PodSecurity...
    assert not ApiError(409, "Conflict", status_body("AlreadyExists")).namespace_terminating
    assert not ApiError(500, "Internal Server Error", "").namespace_terminating
