"""The controller's HTTP Kube: the requests it sends (server-side apply above all) and its errors.

A stand-in for the client's connection pool records the requests; the API server's answers
to them are exercised by tests/integration/test_operator.py.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest

from fti_operator.controller.kube_http import KubeHttp
from fti_operator.reconcile import ApiError


class Pool:
    def __init__(self, answers: list[tuple[int, dict | None]]):
        self.answers = list(answers)
        self.requests: list[dict] = []

    def request(self, method, url, body=None, headers=None, timeout=None):
        self.requests.append({"method": method, "url": url, "body": body, "headers": headers})
        status, payload = self.answers.pop(0)
        return SimpleNamespace(status=status, reason="Reason", data=json.dumps(payload).encode() if payload is not None else b"")


def kube(*answers: tuple[int, dict | None]) -> tuple[KubeHttp, Pool, list]:
    pool = Pool(list(answers))
    configuration = SimpleNamespace(
        host="https://api", auth_settings=lambda: {"BearerToken": {"in": "header", "key": "authorization", "value": "Bearer t"}}
    )
    client = SimpleNamespace(configuration=configuration, rest_client=SimpleNamespace(pool_manager=pool))
    observed: list = []
    return KubeHttp(client, observe=lambda verb, res: observed.append((verb, res))), pool, observed


CRONJOB = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj", "namespace": "ns"}, "spec": {}}


def test_apply_is_one_server_side_apply_patch_owned_by_fti_operator():
    k, pool, observed = kube((201, {**CRONJOB, "metadata": {**CRONJOB["metadata"], "uid": "u"}}))
    out = k.apply(CRONJOB)
    assert out["metadata"]["uid"] == "u"
    [req] = pool.requests
    url = urlsplit(req["url"])
    assert req["method"] == "PATCH" and url.path == "/apis/batch/v1/namespaces/ns/cronjobs/cj"
    assert parse_qs(url.query) == {"fieldManager": ["fti-operator"], "force": ["true"]}
    assert req["headers"]["Content-Type"] == "application/apply-patch+yaml"
    assert req["headers"]["authorization"] == "Bearer t"
    assert json.loads(req["body"]) == CRONJOB  # JSON is YAML
    assert k.calls == {("PATCH", "cronjobs"): 1} and observed == [("PATCH", "cronjobs")] and k.writes() == 1


def test_status_patch_is_a_merge_patch_of_the_subresource():
    k, pool, _ = kube((200, {}))
    k.patch("fti.dev/v1alpha1", "featurepipelines", "ns", "p", {"status": {"a": 1}}, subresource="status")
    [req] = pool.requests
    assert req["url"] == "https://api/apis/fti.dev/v1alpha1/namespaces/ns/featurepipelines/p/status"
    assert req["headers"]["Content-Type"] == "application/merge-patch+json"
    assert k.calls == {("PATCH", "featurepipelines/status"): 1}


def test_missing_objects_are_none_on_get_and_fine_on_delete():
    k, pool, _ = kube((404, {"reason": "NotFound"}), (404, {"reason": "NotFound"}))
    assert k.get("v1", "pods", "ns", "x") is None
    k.delete("batch/v1", "jobs", "ns", "x")
    assert pool.requests[1]["method"] == "DELETE" and json.loads(pool.requests[1]["body"]) == {"propagationPolicy": "Background"}


def test_other_refusals_raise_the_reconcilers_api_error():
    body = {"kind": "Status", "reason": "Forbidden", "details": {"causes": [{"reason": "NamespaceTerminating"}]}}
    k, _, _ = kube((403, body), (409, {"reason": "AlreadyExists"}))
    with pytest.raises(ApiError) as exc:
        k.create({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "ns"}})
    assert exc.value.status == 403 and exc.value.namespace_terminating
    with pytest.raises(ApiError) as exc:
        k.apply(CRONJOB)
    assert exc.value.conflict


def test_list_sends_the_label_selector():
    k, pool, _ = kube((200, {"items": [{"metadata": {"name": "a"}}]}))
    assert k.list("batch/v1", "jobs", "ns", "a=b,c=d") == [{"metadata": {"name": "a"}}]
    assert parse_qs(urlsplit(pool.requests[0]["url"]).query) == {"labelSelector": ["a=b,c=d"]}
