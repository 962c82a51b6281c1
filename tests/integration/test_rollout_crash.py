"""Crash safety: SIGKILL the operator at each step of a rollout and get the uninterrupted end state.

Four flows (docs/rollouts.md): an upgrade, a canary promoted, an automatic rollback on the
readiness deadline, and a GitOps rollback to a model whose feature-group version was retired
and must be re-materialized. Each runs once without a kill — its end state is the reference —
and then once per step with the operator (a process with the chart's ServiceAccount token)
SIGKILLed as soon as that step's transition is observed, and started again. Every run must
end with the same KServe child as the API server has it (spec, labels, revision, and the
same number of spec writes), the same status apart from timestamps, one Event per transition, no
second Job, and no version of the child, as a watch saw them all, that serves a model from
one revision with the feature view of another. The automatic rollback also shows that the
deadline is `target.since + readinessTimeout` whenever the operator was down.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from kubernetes import client

from support.examples import example
from support.rollout_flows import (
    AUTO_ROLLBACK,
    CANARY,
    REMATERIALIZE,
    UPGRADE,
    ChildWatch,
    Registry,
    Run,
    apply,
    auto_rollback,
    canary_promote,
    condition,
    deadline_of,
    delete,
    end_state,
    events,
    fraud_models,
    remat_jobs,
    rematerializing_rollback,
    upgrade,
    version_entry,
)
from support.rollouts import trained
from support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRAINING, PROFILES = "fraud-model", "card-profiles"
# Short enough to keep the flow quick; long enough that an operator restarted after the deadline
# rolls back well before `restart + TIMEOUT`, which is when a deadline re-based on the restart would.
TIMEOUT = 30

# One Event per transition of each flow's uninterrupted run (serving model 1 first is part of each).
EVENTS = {
    "upgrade": {"RolloutStarted": 2, "RolloutComplete": 2},
    "canary": {"RolloutStarted": 1, "RolloutComplete": 1, "CanaryStarted": 1, "Promoted": 1},
    "rollback": {"RolloutStarted": 2, "RolloutComplete": 1, "RolledBack": 1},
    "remat": {"RolloutStarted": 2, "RolloutComplete": 2, "FeaturesNotReady": 1},
}


@pytest.fixture(scope="module")
def fraud(op, k8s, pod_runner):
    """A namespace with both feature groups at v1 and models 1 and 2 Validated on them."""
    ns = f"crash-{os.getpid()}"
    fraud_models(k8s, ns, pod_runner)
    yield ns
    client.CoreV1Api(k8s).delete_namespace(ns)


@pytest.fixture(scope="module")
def retired(fraud, k8s, pod_runner):
    """card_profiles moves to v2 and model 3 is trained on it: once no revision reads v1, v1 retires."""
    ns = fraud
    fp = example("feature-pipeline-profiles.yaml", ns, **{"fti.dev/run": "r2"})
    fp["spec"]["featureGroup"]["version"] = 2
    apply(k8s, fp)
    wait_until(
        lambda: (version_entry(k8s, ns, PROFILES, 2).get("lastRun") or {}).get("succeeded"),
        timeout=600,
        description="card_profiles v2 materialized",
    )
    tp = example("training-pipeline.yaml", ns)
    tp["spec"]["featureView"]["version"] = 2
    for feature in tp["spec"]["featureView"]["features"]:
        if feature["featureGroup"]["name"] == "card_profiles":
            feature["featureGroup"]["version"] = 2
    apply(k8s, tp)
    mv = wait_until(lambda: trained(k8s, ns, 3), timeout=900, description="model 3 trained on card_profiles v2")
    assert mv["phase"] == "Validated" and mv["featureView"]["version"] == 2, (mv, pod_runner.dump(ns))
    return ns


@pytest.fixture
def cleanup():
    """The InferenceServices a test made, deleted after it whatever happened: a case left behind
    would keep feature versions needed that the re-materializing rollback needs retired."""
    runs: list[Run] = []
    yield runs
    for run in runs:
        delete(run)


# The reference end state of each flow, from its uninterrupted run (the first parameter).
REFERENCE: dict[str, dict] = {}


def case(op, k8s, ns: str, flow: str, kill_at: str | None, drive: Callable[[Run], None], cleanup: list[Run], **run_args) -> Run:
    """Run `flow` on a fresh InferenceService (after its uninterrupted run, if that has not run
    yet), watching every version of the child; assert the end state is the reference one."""
    if kill_at is not None and flow not in REFERENCE:
        case(op, k8s, ns, flow, None, drive, cleanup)
    suffix = (kill_at or "none").replace("-", "")[:12]
    run = Run(k8s, op, ns, f"{flow}-{suffix}", kill_at=kill_at, **run_args)
    cleanup.append(run)
    with ChildWatch(k8s, ns, run.name) as watch:
        drive(run)
        # Settled: the end state is read once nothing is left to do (Progressing says so).
        wait_until(
            run.status_has(lambda st: condition(st, "Progressing").get("reason") in ("RolloutComplete", "RolledBack")),
            timeout=120,
            description=f"{run.name} settled",
        )
        state = end_state(run)
    assert kill_at is None or kill_at in run.reached, f"{kill_at} is not a step of {flow}: {run.reached}"
    assert watch.versions, "the watch saw no version of the child"
    assert not watch.mixed(Registry.read(k8s, ns, TRAINING)), watch.mixed(Registry.read(k8s, ns, TRAINING))
    if kill_at is None:
        assert state["events"] == EVENTS[flow], "one Event per transition"
        REFERENCE[flow] = state
    else:
        assert state == REFERENCE[flow], differences(state, REFERENCE[flow])
    return run


def differences(got: dict, want: dict) -> list[str]:
    """Each end-state field (child, status key, events) that differs, with both values in full."""
    out = [f"{part}: {got[part]!r} != {want[part]!r}" for part in ("child", "events") if got[part] != want[part]]
    keys = sorted(set(got["status"]) | set(want["status"]))
    out += [
        f"status.{k}: {got['status'].get(k)!r} != {want['status'].get(k)!r}"
        for k in keys
        if got["status"].get(k) != want["status"].get(k)
    ]
    return out


@pytest.mark.parametrize("kill_at", [None, *UPGRADE])
def test_upgrade(op, k8s, fraud, kill_at, cleanup) -> None:
    case(op, k8s, fraud, "upgrade", kill_at, lambda r: upgrade(r, 1, 2), cleanup)


@pytest.mark.parametrize("kill_at", [None, *CANARY])
def test_canary_then_promote(op, k8s, fraud, kill_at, cleanup) -> None:
    case(op, k8s, fraud, "canary", kill_at, lambda r: canary_promote(r, 1, 2), cleanup)


@pytest.mark.parametrize("kill_at", [None, *AUTO_ROLLBACK])
def test_automatic_rollback(op, k8s, fraud, kill_at, cleanup) -> None:
    down = (lambda r: deadline_of(r) + timedelta(seconds=1)) if kill_at == "down-across-deadline" else None
    run = case(op, k8s, fraud, "rollback", kill_at, lambda r: auto_rollback(r, 1, 2, TIMEOUT), cleanup, down_until=down)
    st = run.status()
    # The deadline is the recorded one: the failed record keeps the target's `since`, and the
    # rollback was written at `since + readinessTimeout` at the earliest ...
    assert st["failed"]["since"] == run.notes["since"] and st["failed"]["model"] == 2
    assert "skew guard" in st["failed"]["message"]
    rolled_back = datetime.fromisoformat(condition(st, "Progressing")["lastTransitionTime"])
    assert rolled_back >= deadline_of(run)
    if run.restarted_at is not None and run.restarted_at > deadline_of(run):
        # ... and, when the operator was down across it, before a deadline re-based on the restart.
        assert rolled_back < run.restarted_at + timedelta(seconds=TIMEOUT), (rolled_back, run.restarted_at)
    if kill_at == "down-across-deadline":
        assert run.restarted_at is not None and run.restarted_at > deadline_of(run)


@pytest.mark.parametrize("kill_at", [None, *REMATERIALIZE])
def test_rollback_to_a_retired_feature_version(op, k8s, retired, kill_at, cleanup) -> None:
    ns = retired
    run = case(op, k8s, ns, "remat", kill_at, lambda r: rematerializing_rollback(r, 1, 3, PROFILES, 1), cleanup)
    # One Job brought card_profiles v1 back, its run was recorded once, one Event said so.
    [job] = remat_jobs(k8s, ns, PROFILES, 1) - run.notes["jobs_before"]
    rematerializing = [e for e in events(k8s, ns, PROFILES, "FeaturePipeline") if e.reason == "Rematerializing"]
    assert len([e for e in rematerializing if job in e.message]) == 1, [e.message for e in rematerializing]
    succeeded = [e for e in events(k8s, ns, PROFILES, "FeaturePipeline") if e.reason == "RunSucceeded" and job in e.message]
    assert len(succeeded) == 1
