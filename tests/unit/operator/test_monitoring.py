"""Monitoring an InferenceService (docs/monitoring.md): spec validation, the pure drift and
retraining decisions, and the reconcile on the in-memory API server — the CronJob from what
serves, a report read from a finished run's termination message, the Drifted condition with
one Event per transition, and retraining asked once per report within the cooldown."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from fti_operator import cli
from fti_operator.api import InferenceService, TrainingPipeline
from fti_operator.api.identity import ANNOTATION_RUN, ANNOTATION_TRIGGER, ANNOTATION_TRIGGERED_BY
from fti_operator.reconcile import training
from fti_operator.render.training import training_hash
from fti_operator.versions.monitoring import decide_retrain, drift_condition, keep_requests, report_revisions
from support.memkube_rollouts import NS, T0, fp, get, kserve, reconcile_isvc, rollout_env, tp

from .fixtures_resources import ISVC_ONLINE, variant

MONITORING = {"minRows": 100, "drift": {"threshold": 0.2}, "onDrift": "retrain", "retrain": {"cooldown": "6h", "maxPerDay": 2}}


@pytest.fixture
def env():
    return rollout_env()


def test_spec_defaults_and_errors_name_the_field() -> None:
    spec = InferenceService.model_validate(variant(ISVC_ONLINE, "spec.monitoring", {})).spec.monitoring
    assert spec is not None
    assert (spec.schedule, spec.window, spec.min_rows, spec.drift.method, spec.on_drift) == (
        "@hourly",
        "24h",
        1000,
        "psi",
        "alert",
    )
    assert (spec.retrain.cooldown, spec.retrain.max_per_day, spec.logging) == ("24h", 1, None)
    for field, value, needle in [
        ("window", "a day", "window must be a duration"),
        ("window", "0s", "window must be a duration"),
        ("schedule", "every hour", "schedule"),
        ("retrain", {"cooldown": "1d"}, "cooldown must be a duration"),
        ("logging", {"sampleRate": 1.5}, "sampleRate"),
        ("drift", {"method": "chi2"}, "method"),
    ]:
        with pytest.raises(ValidationError) as err:
            InferenceService.model_validate(variant(ISVC_ONLINE, f"spec.monitoring.{field}", value))
        assert needle in str(err.value), (field, str(err.value))


def result(status: str, model: int = 1, rows: int = 5000, role: str = "stable", start: str = "2026-12-03T10:00:00Z") -> dict:
    features = [
        {"name": "amount", "method": "psi", "score": 0.41, "threshold": 0.2, "drifted": status == "Drifted"},
        {"name": "hour", "method": "psi", "score": 0.05, "threshold": 0.2, "drifted": False},
    ]
    return {
        "ok": True,
        "revisions": [
            {
                "role": role,
                "modelVersion": model,
                "featureViewVersion": 1,
                "rows": rows,
                "status": status,
                "driftedFeatures": int(status == "Drifted"),
                "features": features,
                "reportUri": "file:///s/namespaces/fraud/monitoring/s/run/report.json",
                "windowStart": start,
                "windowEnd": "2026-12-04T10:00:00Z",
            }
        ],
    }


def test_drift_condition_from_reports() -> None:
    assert drift_condition(None, 100)[:2] == (None, "NoReportYet")
    drifted = {"job": "j", "succeeded": True, "revisions": report_revisions(result("Drifted"))}
    ok, reason, message = drift_condition(drifted, 100)
    assert (ok, reason) == (True, "Drifted") and "amount psi 0.410" in message and "hour" not in message
    assert drift_condition({"job": "j", "succeeded": True, "revisions": report_revisions(result("NoDrift"))}, 100)[:2] == (
        False,
        "NoDrift",
    )
    short = {"job": "j", "succeeded": True, "revisions": report_revisions(result("NotEnoughData", rows=12))}
    assert drift_condition(short, 100)[:2] == (None, "NotEnoughData")
    assert drift_condition({"job": "j", "succeeded": False, "message": "boom"}, 100)[:2] == (None, "MonitoringFailed")


def test_retraining_is_refused_on_a_stale_training_window_cooldown_and_daily_limit() -> None:
    now = datetime(2026, 12, 4, 12, tzinfo=UTC)
    drifted = report_revisions(result("Drifted"))
    args = {"report": "r", "drifted": drifted, "now": now, "cooldown_seconds": 3600.0, "max_per_day": 2, "pipeline": "m"}
    assert decide_retrain(**args, requests=[], training_end=None).request
    stale = decide_retrain(**args, requests=[], training_end=datetime(2026, 12, 1, tzinfo=UTC))
    assert (stale.request, stale.reason) == (False, "TrainingWindowStale") and "trainingData.end" in stale.message
    recent = [{"at": (now - timedelta(minutes=10)).isoformat()}]
    assert decide_retrain(**args, requests=recent, training_end=None).reason == "CooldownActive"
    two = [{"at": (now - timedelta(hours=h)).isoformat()} for h in (2, 5)]
    assert decide_retrain(**args, requests=two, training_end=None).reason == "DailyLimitReached"
    assert decide_retrain(**{**args, "drifted": []}, requests=[], training_end=None).reason == "NoDrift"
    assert decide_retrain(**{**args, "pipeline": None}, requests=[], training_end=None).reason == "NoTrainingPipeline"
    old = [{"at": (now - timedelta(days=h)).isoformat()} for h in (2, 3)]
    assert len(keep_requests(old, now)) == 1  # the newest stays: the cooldown counts from it


def monitoring_run(kube, name: str, body: dict, finished: str = "2026-12-04T10:05:00Z") -> None:
    """A finished monitoring Job and its pod with the result in its termination message."""
    labels = {
        "app.kubernetes.io/managed-by": "fti-operator",
        "fti.dev/kind": "inferenceservice",
        "fti.dev/resource": "s",
        "fti.dev/component": "monitoring",
    }
    kube.create(
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": NS, "labels": labels}, "spec": {}}
    )
    kube.patch(
        "batch/v1",
        "jobs",
        NS,
        name,
        {"status": {"completionTime": finished, "conditions": [{"type": "Complete", "status": "True"}]}},
        subresource="status",
    )
    pod = {"name": f"{name}-x", "namespace": NS, "labels": {"batch.kubernetes.io/job-name": name}}
    kube.create(
        {"apiVersion": "v1", "kind": "Pod", "metadata": pod, "spec": {"containers": [{"name": "pipeline", "image": "i"}]}}
    )
    term = {"exitCode": 0, "finishedAt": finished, "message": json.dumps(body)}
    kube.patch(
        "v1",
        "pods",
        NS,
        f"{name}-x",
        {"status": {"containerStatuses": [{"name": "pipeline", "state": {"terminated": term}}]}},
        subresource="status",
    )


def cond(obj: dict, type_: str) -> dict:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def reasons(kube) -> list[str]:
    return [e["reason"] for e in kube.list("v1", "events", NS)]


def test_reports_drift_and_retraining_once_per_report_within_the_cooldown(env) -> None:
    kube, ctx, clock = env
    fp(kube, 1, {1: "g-1"})
    trained = tp(kube, {1: 1})
    # v1's run is recorded, as its training reconcile left it: no run is due but one asked for.
    last = {"modelVersion": 1, "trigger": "Created", "trainingHash": training_hash(TrainingPipeline.model_validate(trained))}
    kube.patch("fti.dev/v1alpha1", "trainingpipelines", NS, "m", {"status": {"lastRun": last}}, subresource="status")
    body = {
        "apiVersion": "fti.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "s", "namespace": NS},
        "spec": {
            "model": {"name": "m"},
            "mode": "online",
            "online": {"topology": "combined"},
            "monitoring": {**MONITORING, "logging": {"sampleRate": 0.25}},
        },
    }
    kube.apply(body, field_manager="user")
    reconcile_isvc(ctx)
    kserve(kube, True)
    reconcile_isvc(ctx)
    isvc = get(kube, "inferenceservices", "s")
    assert isvc["status"]["stable"]["model"] == 1
    assert cond(isvc, "Drifted")["status"] == "Unknown" and cond(isvc, "Drifted")["reason"] == "NoReportYet"
    # The CronJob runs the check on the stable revision, against the profile next to its model.
    cron = kube.get("batch/v1", "cronjobs", NS, "s-monitor")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid" and cron["spec"]["schedule"] == "@hourly"
    assert cron["metadata"]["ownerReferences"][0]["uid"] == isvc["metadata"]["uid"]
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    spec = json.loads(next(e["value"] for e in container["env"] if e["name"] == "FTI_SPEC"))
    assert spec["revisions"] == [
        {
            "role": "stable",
            "modelVersion": 1,
            "featureViewVersion": 1,
            "modelUri": "file:///s/models/m/1/model",
            "profileUri": "file:///s/models/m/1/model/monitoring-profile.json",
        }
    ]
    server = kube.get("serving.kserve.io/v1beta1", "inferenceservices", NS, "s")["spec"]["predictor"]["containers"][0]
    log = json.loads(next(e["value"] for e in server["env"] if e["name"] == "FTI_PREDICTION_LOG"))
    assert log == {"uri": "file:///var/lib/fti/artifacts/namespaces/fraud/predictions/s", "sampleRate": 0.25, "flushSeconds": 5}

    # A drift report: status per revision, Drifted=True with one Event, one retraining request.
    clock.now = T0 + timedelta(minutes=10)
    monitoring_run(kube, "s-monitor-1", result("Drifted"))
    reconcile_isvc(ctx)
    isvc = get(kube, "inferenceservices", "s")
    mon = isvc["status"]["monitoring"]
    assert mon["job"] == "s-monitor-1" and mon["revisions"][0]["status"] == "Drifted" and mon["revisions"][0]["rows"] == 5000
    assert mon["revisions"][0]["features"][0] == {
        "name": "amount",
        "method": "psi",
        "score": 0.41,
        "threshold": 0.2,
        "drifted": True,
    }
    drifted = cond(isvc, "Drifted")
    assert (drifted["status"], drifted["reason"]) == ("True", "Drifted") and "amount" in drifted["message"]
    assert drifted["observedGeneration"] == isvc["metadata"]["generation"]
    assert cond(isvc, "Retraining")["reason"] == "Requested"
    token = get(kube, "trainingpipelines", "m")["metadata"]["annotations"][ANNOTATION_RUN]
    assert [r["token"] for r in mon["retrainRequests"]] == [token]
    assert reasons(kube).count("DriftDetected") == 1 and reasons(kube).count("RetrainingRequested") == 1
    # Reconciled again, the same report asks for nothing more and posts nothing more.
    reconcile_isvc(ctx)
    assert get(kube, "inferenceservices", "s")["status"]["monitoring"]["retrainRequests"] == mon["retrainRequests"]
    assert reasons(kube).count("DriftDetected") == 1 and reasons(kube).count("RetrainingRequested") == 1

    # The TrainingPipeline runs for it, and the run says why.
    training.reconcile(ctx, get(kube, "trainingpipelines", "m"))
    jobs = kube.list("batch/v1", "jobs", NS, "fti.dev/kind=trainingpipeline")
    assert [j["metadata"]["annotations"][ANNOTATION_TRIGGER] for j in jobs] == ["Drift"]
    assert "drift report s-monitor-1" in jobs[0]["metadata"]["annotations"][ANNOTATION_TRIGGERED_BY]
    entry = next(mv for mv in get(kube, "trainingpipelines", "m")["status"]["modelVersions"] if mv["version"] == 2)
    assert entry["trigger"] == "Drift" and "s-monitor-1" in entry["triggeredBy"]
    assert get(kube, "trainingpipelines", "m")["status"]["lastRun"]["trigger"] == "Drift"

    # A second drifted report inside the cooldown: refused, no second token.
    clock.now = T0 + timedelta(hours=1)
    monitoring_run(kube, "s-monitor-2", result("Drifted"), finished="2026-12-04T11:05:00Z")
    reconcile_isvc(ctx)
    isvc = get(kube, "inferenceservices", "s")
    assert cond(isvc, "Retraining")["reason"] == "CooldownActive"
    assert get(kube, "trainingpipelines", "m")["metadata"]["annotations"][ANNOTATION_RUN] == token
    assert reasons(kube).count("DriftDetected") == 1  # still drifted: no new transition

    # Drift ends: Drifted=False with one Event.
    monitoring_run(kube, "s-monitor-3", result("NoDrift"), finished="2026-12-04T12:05:00Z")
    reconcile_isvc(ctx)
    isvc = get(kube, "inferenceservices", "s")
    assert (cond(isvc, "Drifted")["status"], cond(isvc, "Drifted")["reason"]) == ("False", "NoDrift")
    assert reasons(kube).count("DriftEnded") == 1

    # `fti local status` shows the CronJob and the verdict (the same status, from the same reconcile).
    with cli.out.capture() as shown:
        cli._print_summary([isvc])
    assert "Monitoring" in shown.get() and "s-monitor-3" in shown.get()

    # Monitoring removed: the CronJob goes, and so does status.monitoring.
    spec = {**body["spec"]}
    spec.pop("monitoring")
    kube.apply({**body, "spec": spec}, field_manager="user")
    reconcile_isvc(ctx)
    assert kube.get("batch/v1", "cronjobs", NS, "s-monitor") is None
    isvc = get(kube, "inferenceservices", "s")
    assert "monitoring" not in isvc["status"] and not any(c["type"] == "Drifted" for c in isvc["status"]["conditions"])


def test_a_new_report_replaces_the_services_drift_series() -> None:
    from fti_operator.controller import metrics

    exporter = metrics.PrometheusMetrics()
    first = report_revisions(result("Drifted"))
    exporter.drift("ns", "svc", first)
    labels = ("ns", "svc", "amount", "psi", "1", "1")
    assert metrics.FEATURE_DRIFT.labels(*labels)._value.get() == 0.41
    later = [{**first[0], "model": 2, "features": [{"name": "hour", "method": "psi", "score": 0.3}]}]
    exporter.drift("ns", "svc", later)
    assert labels not in metrics.FEATURE_DRIFT._metrics  # the old revision's series is gone
    assert metrics.FEATURE_DRIFT.labels("ns", "svc", "hour", "psi", "2", "1")._value.get() == 0.3


def test_the_canary_is_monitored_while_it_gets_traffic() -> None:
    from fti_operator.reconcile.monitoring import monitored_revisions
    from fti_operator.versions import ModelInfo

    stable = {"model": 4, "featureView": 1, "storageUri": "s3://m/4"}
    target = {"model": 5, "featureView": 2, "storageUri": "s3://m/5"}
    models = [ModelInfo("m", 5, "Validated", profile_uri="s3://p/5.json")]
    assert [r.role for r in monitored_revisions({"stable": stable, "target": target}, models)] == ["stable"]
    both = monitored_revisions({"stable": stable, "target": {**target, "traffic": 10}}, models)
    assert [(r.role, r.model_version, r.profile_uri) for r in both] == [
        ("stable", 4, "s3://m/4/monitoring-profile.json"),
        ("canary", 5, "s3://p/5.json"),
    ]


def test_a_users_token_after_a_drift_token_is_a_plain_run_now() -> None:
    cause = json.dumps({"token": "drift-1", "trigger": "Drift", "by": "InferenceService s, drift report r"})
    annotations = {"fti.dev/run-cause": cause}
    assert training.run_cause(annotations, "drift-1") == {"trigger": "Drift", "by": "InferenceService s, drift report r"}
    assert training.run_cause(annotations, "mine") is None  # the cause belongs to another token
    assert training.run_cause({"fti.dev/run-cause": "{not json"}, "drift-1") is None
