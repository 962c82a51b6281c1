"""The Argo CD health checks of examples/argocd/argocd-cm.yaml, run in a real Lua.

Argo CD runs them in gopher-lua (Lua 5.1); here they run in Lua 5.1 through lupa when it
is installed, else Debian's lua5.1/lua5.4 interpreter; without any Lua the test skips.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from fti_operator.api.identity import API_VERSION

CM = Path(__file__).resolve().parents[3] / "examples" / "argocd" / "argocd-cm.yaml"
KINDS = ("FeaturePipeline", "TrainingPipeline", "InferenceService")


def lua_literal(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{lua_literal(k)}] = {lua_literal(v)}" for k, v in value.items() if v is not None) + "}"
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a JSON string literal is a valid Lua string literal for our text


def _runner():
    try:
        import lupa.lua51 as lua51

        return "lupa.lua51", lambda src: tuple(lua51.LuaRuntime().execute(src))
    except ImportError:
        pass
    for exe in ("lua5.1", "lua5.4", "lua"):
        path = shutil.which(exe)
        if path:

            def run(src: str, path=path):
                out = subprocess.run(
                    [path, "-"],
                    input=src.replace("return hs.status, hs.message", 'io.write(hs.status, "\\t", hs.message)'),
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=10,
                ).stdout
                return tuple(out.split("\t", 1))

            return exe, run
    return None, None


LUA_NAME, LUA = _runner()
pytestmark = pytest.mark.skipif(LUA is None, reason="no Lua: pip install lupa, or apt-get install lua5.1")


def scripts() -> dict[str, str]:
    data = yaml.safe_load(CM.read_text())["data"]
    return {kind: data[f"resource.customizations.health.fti.dev_{kind}"] for kind in KINDS}


def health(kind: str, obj: dict) -> tuple[str, str]:
    src = (
        f"local obj = {lua_literal(obj)}\nlocal function check()\n{scripts()[kind]}\nend\n"
        "local hs = check()\nreturn hs.status, hs.message\n"
    )
    return LUA(src)


def obj(generation=2, observed=2, conditions=None, suspend=None, status=True):
    o = {
        "apiVersion": API_VERSION,
        "kind": "X",
        "metadata": {"name": "x", "generation": generation},
        "spec": {"suspend": suspend},
    }
    if status:
        o["status"] = {"observedGeneration": observed, "conditions": conditions or []}
    return o


def cond(type_, status, reason, message="", observed=2):
    return {"type": type_, "status": status, "reason": reason, "message": message, "observedGeneration": observed}


def test_every_kind_has_a_check():
    assert set(scripts()) == set(KINDS)
    assert len(set(scripts().values())) == 1  # one check, shared through the YAML anchor


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "case, expected, words",
    [
        (obj(status=False), "Progressing", "report status"),
        (obj(observed=1, conditions=[cond("Ready", "True", "Materialized", observed=1)]), "Progressing", "generation 2"),
        (obj(conditions=[cond("Ready", "True", "Materialized", observed=1)]), "Progressing", "generation 1"),
        (obj(conditions=[cond("Materialized", "True", "RunSucceeded")]), "Progressing", "No Ready"),
        (
            obj(
                conditions=[cond("Ready", "True", "Materialized", "v2 last run ok"), cond("Materialized", "True", "RunSucceeded")]
            ),
            "Healthy",
            "v2 last run ok",
        ),
        (
            obj(conditions=[cond("Ready", "False", "RunFailed", "column amount: 12 rows below min")]),
            "Degraded",
            "RunFailed: column amount",
        ),
        (obj(conditions=[cond("Ready", "False", "ModelRejected", "roc_auc 0.7 < 0.85")]), "Degraded", "roc_auc"),
        (
            obj(conditions=[cond("Ready", "False", "FeaturesNotReady", "card_transactions v2 not online")]),
            "Progressing",
            "FeaturesNotReady",
        ),
        (obj(conditions=[cond("Ready", "Unknown", "WaitingForFirstRun")]), "Progressing", "WaitingForFirstRun"),
        (
            obj(
                conditions=[
                    cond("Ready", "True", "Serving"),
                    cond("CanaryReady", "Unknown", "CanaryInProgress", "model 5 at 10%"),
                ]
            ),
            "Progressing",
            "CanaryReady CanaryInProgress",
        ),
        (
            obj(
                conditions=[cond("Ready", "True", "Serving"), cond("UpToDate", "False", "RolledBack", "model 5 not ready in 10m")]
            ),
            "Degraded",
            "RolledBack",
        ),
        (obj(suspend=True, conditions=[cond("Ready", "True", "Materialized")]), "Suspended", "Suspended"),
        (
            obj(conditions=[cond("Ready", "True", "Serving"), cond("Progressing", "True", "RollingOut", "revision 3 waiting")]),
            "Progressing",
            "RollingOut",
        ),
        (
            obj(
                conditions=[cond("Ready", "True", "Serving"), cond("Progressing", "False", "RolledBack", "revision 3 not ready")]
            ),
            "Degraded",
            "RolledBack",
        ),
        (
            obj(conditions=[cond("Ready", "True", "Serving"), cond("Progressing", "True", "RolloutComplete", "revision 3")]),
            "Healthy",
            "Serving",
        ),
        (obj(suspend=True, conditions=[cond("Ready", "False", "RunFailed")]), "Degraded", "RunFailed"),
        (
            obj(
                conditions=[
                    cond("Ready", "True", "Serving"),
                    cond("Progressing", "True", "RolloutComplete", "revision 3"),
                    cond("Canary", "False", "NoCanaryInProgress", "the stable revision takes all the traffic"),
                ]
            ),
            "Healthy",
            "Serving",
        ),
        (
            obj(
                conditions=[
                    cond("Ready", "True", "Serving"),
                    cond("Progressing", "False", "TrafficSplitUnsupported", "model 5 is held back"),
                    cond("Canary", "False", "TrafficSplitUnsupported", "KServe cannot split traffic"),
                ]
            ),
            "Degraded",
            "TrafficSplitUnsupported",
        ),
        (
            obj(
                conditions=[
                    cond("Ready", "True", "Materialized", "v2: 0 rows written; 100.0% quarantined, within maxRejectedFraction 1"),
                    cond("Materialized", "True", "RunSucceeded"),
                    cond("DataQuarantined", "True", "RowsQuarantined", "v2: 3 rows quarantined by fp-v2-1 at file:///q"),
                ]
            ),
            "Degraded",
            "DataQuarantined RowsQuarantined: v2: 3 rows",
        ),
        (
            obj(
                conditions=[
                    cond("Ready", "False", "DataQuarantined", "v2: 3 rows quarantined by fp-v2-1"),
                    cond("Materialized", "True", "RunSucceeded"),
                    cond("DataQuarantined", "True", "RowsQuarantined", "v2: 3 rows quarantined by fp-v2-1"),
                ]
            ),
            "Degraded",
            "3 rows quarantined",
        ),
        (
            obj(
                conditions=[
                    cond("Ready", "True", "Materialized", "v2: 5 rows written"),
                    cond("Materialized", "True", "RunSucceeded"),
                    cond("DataQuarantined", "False", "NoRowsQuarantined", "v2: fp-v2-2 quarantined no rows"),
                ]
            ),
            "Healthy",
            "v2: 5 rows written",
        ),
        (
            obj(
                conditions=[
                    cond("Ready", "Unknown", "WaitingForFirstRun"),
                    cond("DataQuarantined", "Unknown", "WaitingForFirstRun"),
                ]
            ),
            "Progressing",
            "WaitingForFirstRun",
        ),
        (
            obj(
                conditions=[
                    cond("Ready", "True", "Serving", "revision 2 serves"),
                    cond("Drifted", "True", "Drifted", "stable: amount psi 0.41"),
                ]
            ),
            "Degraded",
            "Drifted Drifted: stable: amount psi 0.41",
        ),
        (
            obj(
                conditions=[
                    cond("Ready", "True", "Serving", "revision 2 serves"),
                    cond("Drifted", "False", "NoDrift"),
                    cond("Retraining", "False", "CooldownActive", "next run after 12:00"),
                ]
            ),
            "Healthy",
            "revision 2 serves",
        ),
        (
            obj(
                conditions=[
                    cond("Ready", "True", "Serving", "revision 2 serves"),
                    cond("Drifted", "Unknown", "NotEnoughData", "120 rows < 1000"),
                ]
            ),
            "Healthy",
            "revision 2 serves",
        ),
    ],
    ids=[
        "no-status",
        "stale-status",
        "stale-ready",
        "no-ready",
        "healthy",
        "run-failed",
        "model-rejected",
        "waiting-features",
        "first-run",
        "canary",
        "rolled-back",
        "suspended",
        "rolling-out",
        "auto-rolled-back",
        "rollout-complete",
        "suspended-but-failing",
        "no-canary-running",
        "canary-held",
        "quarantined-within-policy",
        "quarantined-beyond-policy",
        "quarantine-cleared",
        "quarantine-first-run",
        "drifted",
        "no-drift-retraining-cooling-down",
        "drift-not-enough-data",
    ],
)
def test_health(kind, case, expected, words):
    status, message = health(kind, case)
    assert status == expected, (LUA_NAME, message)
    assert words in message


def test_pinned_revision_shows_suspended():
    o = obj(conditions=[cond("Ready", "True", "Serving"), cond("Progressing", "True", "RolloutComplete", "r2")])
    o["status"]["pinned"] = {"revision": 2, "model": 3, "featureView": 1}
    assert health("InferenceService", o) == ("Suspended", "Pinned to revision 2 by fti.dev/rollback")


def actions() -> dict:
    data = yaml.safe_load(CM.read_text())["data"]
    return yaml.safe_load(data["resource.customizations.actions.fti.dev_InferenceService"])


def run_action(src: str, o: dict) -> dict:
    """Run an action's Lua on `o` and return the annotations it set (as Argo CD would apply them)."""
    lua = (
        f"local obj = {lua_literal(o)}\nlocal function act()\n{src}\nend\nlocal out = act()\n"
        "local keys = {}\nfor k, v in pairs(out.metadata.annotations or {}) do keys[#keys + 1] = k .. '=' .. v end\n"
        "table.sort(keys)\nreturn table.concat(keys, ';'), ''\n"
    )
    text = LUA(lua)[0]
    return dict(item.split("=", 1) for item in text.split(";") if item)


@pytest.mark.parametrize(
    "verb,key,prefix",
    [
        ("undo", "fti.dev/rollback", "previous@"),
        ("promote", "fti.dev/promote", "2"),
        ("abort", "fti.dev/abort", "2"),
        ("retry", "fti.dev/retry", "2"),
    ],
)
def test_actions_set_only_the_annotation_the_operator_handles(verb, key, prefix):
    if LUA_NAME != "lupa.lua51":
        pytest.skip("actions return tables: run under lupa")
    src = next(d["action.lua"] for d in actions()["definitions"] if d["name"] == verb)
    o = obj(conditions=[])
    o["metadata"]["annotations"] = {"keep": "me"}
    annotations = run_action(src, o)
    assert annotations["keep"] == "me" and annotations[key].startswith(prefix) and len(annotations) == 2


def test_action_discovery_follows_status():
    if LUA_NAME != "lupa.lua51":
        pytest.skip("discovery returns a table: run under lupa")
    import lupa.lua51 as lua51

    src = actions()["discovery.lua"]
    o = obj(conditions=[])
    o["status"].update(
        target={"revision": 3, "model": 5, "featureView": 1, "traffic": 10},
        history=[{"revision": 1, "model": 3, "featureView": 1}],
    )
    rt = lua51.LuaRuntime()
    result = rt.execute(f"local obj = {lua_literal(o)}\n{src}")
    disabled = {k: result[k]["disabled"] for k in result}
    assert disabled == {"undo": False, "promote": False, "abort": False, "retry": True}
