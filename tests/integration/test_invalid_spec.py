"""The operator (running as the chart's ServiceAccount) on what admission cannot judge: a spec
whose regex is outside RE2 is admitted, reported Ready=False/InvalidSpec with one Warning Event,
and nothing is created; fixing the spec lets the pipeline proceed (docs/concepts.md, "Validation")."""

from __future__ import annotations

import copy

import pytest
from kubernetes import client

from integration.test_operator import condition, create, get, operator  # noqa: F401 - the operator fixture
from support.manifest_corpus import invalid_cases
from support.wait import wait_until

pytestmark = pytest.mark.integration

CASE = next(c for c in invalid_cases() if c.id == "fp-regex-lookahead")


def _invalid_spec_events(k8s, namespace: str, name: str) -> list:
    events = client.CoreV1Api(k8s).list_namespaced_event(namespace).items
    return [e for e in events if e.reason == "InvalidSpec" and e.involved_object.name == name]


def test_invalid_spec_is_reported_and_nothing_is_created(operator, k8s, namespace):  # noqa: F811
    body = copy.deepcopy(CASE.doc)
    body["metadata"]["namespace"] = namespace
    name = body["metadata"]["name"]
    create(k8s, body)

    ready = wait_until(
        lambda: (c := condition(get(k8s, namespace, "featurepipelines", name), "Ready")) and c["reason"] == "InvalidSpec" and c,
        timeout=60,
        description="Ready=False/InvalidSpec",
    )
    assert ready["status"] == "False" and CASE.field in ready["message"] and "RE2" in ready["message"], ready
    events = wait_until(lambda: _invalid_spec_events(k8s, namespace, name), timeout=30, description="InvalidSpec Event")
    assert len(events) == 1 and events[0].type == "Warning" and CASE.field in events[0].message
    batch = client.BatchV1Api(k8s)
    assert batch.list_namespaced_cron_job(namespace).items == [] and batch.list_namespaced_job(namespace).items == []

    # Fixed: the operator proceeds (its CronJob appears) and Ready is no longer InvalidSpec.
    client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
        "fti.dev",
        "v1alpha1",
        namespace,
        "featurepipelines",
        name,
        {
            "spec": {
                "validation": {
                    "expectations": [*body["spec"]["validation"]["expectations"][:3], {"column": "issuer", "regex": "^[A-Z]{3}$"}]
                }
            }
        },
    )
    wait_until(lambda: batch.list_namespaced_cron_job(namespace).items, timeout=60, description="the CronJob after the fix")
    wait_until(
        lambda: condition(get(k8s, namespace, "featurepipelines", name), "Ready")["reason"] != "InvalidSpec",
        timeout=60,
        description="InvalidSpec cleared",
    )
    assert len(_invalid_spec_events(k8s, namespace, name)) == 1
