"""ApiError: which refusals are permanent (no retry) and which are not."""

from __future__ import annotations

import json
import logging

from fti_operator.reconcile.kube import ApiError
from fti_operator.reconcile.writes import emit_event


def status_body(reason: str, cause: str | None = None) -> str:
    details = {"causes": [{"reason": cause, "message": "..."}]} if cause else {}
    return json.dumps({"kind": "Status", "status": "Failure", "reason": reason, "details": details})


def test_create_in_a_terminating_namespace_is_permanent() -> None:
    assert ApiError(403, "Forbidden", status_body("Forbidden", "NamespaceTerminating")).namespace_terminating


def test_other_refusals_are_retried() -> None:
    assert not ApiError(403, "Forbidden", status_body("Forbidden")).namespace_terminating  # RBAC, PodSecurity...
    assert not ApiError(409, "Conflict", status_body("AlreadyExists")).namespace_terminating
    assert not ApiError(500, "Internal Server Error", "").namespace_terminating


class RefusingKube:
    """Answers every create with one refusal; the rest of the Kube interface is not needed."""

    def __init__(self, error: ApiError):
        self.error = error

    def create(self, body):
        raise self.error


BODY = {
    "apiVersion": "fti.dev/v1alpha1",
    "kind": "InferenceService",
    "metadata": {"name": "fraud-online", "namespace": "fraud", "uid": "u1"},
}


def test_an_event_into_a_terminating_namespace_is_not_a_warning(caplog) -> None:
    refusal = ApiError(403, "Forbidden", status_body("Forbidden", "NamespaceTerminating"))
    with caplog.at_level(logging.DEBUG, logger="fti_operator"):
        emit_event(RefusingKube(refusal), BODY, "RolloutComplete", "revision 2 serves")
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]


def test_an_event_refused_by_rbac_is_a_warning(caplog) -> None:
    refusal = ApiError(403, "Forbidden", status_body("Forbidden"))
    with caplog.at_level(logging.DEBUG, logger="fti_operator"):
        emit_event(RefusingKube(refusal), BODY, "RolloutComplete", "revision 2 serves")
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "RolloutComplete" in caplog.text and "fraud/fraud-online" in caplog.text
