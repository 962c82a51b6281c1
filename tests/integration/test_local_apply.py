"""`fti local apply` end to end: the fraud example's manifests run without a cluster.

Real pipelines, real stores, a real KServe model server on loopback: the same path
`make demo` takes, on a smaller generated data set.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from support.examples import score_requests

REPO = Path(__file__).resolve().parents[2]
FTI = [sys.executable, "-m", "fti_operator.cli"]

pytestmark = pytest.mark.slow


def _fti(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*FTI, *args], capture_output=True, text=True, timeout=600, env={"COLUMNS": "200", **_env()}, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"fti {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("FTI_")}


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's manifests with a smaller generated data set."""
    out = tmp_path_factory.mktemp("manifests")
    for src in sorted((REPO / "examples" / "fraud").glob("*.yaml")):
        doc = yaml.safe_load(src.read_text())
        gen = ((doc.get("spec") or {}).get("source") or {}).get("generator")
        if gen:
            gen["params"]["n_cards"] = 600
            if "days" in gen["params"]:
                gen["params"]["days"] = 20
        (out / src.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def _demo_commands(state: Path, example: Path) -> list[list[str]]:
    """The `fti` commands of the Makefile's demo recipe, in order, as argv after `fti`, on the
    example with the smaller data set and the state directory `state`."""
    import shlex

    recipe = (REPO / "Makefile").read_text().split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in recipe.splitlines()[1:] if line.strip().startswith("$(VENV)/bin/fti ")]
    subst = {"$(VENV)/bin/fti": "", "$(STATE_DIR)": str(state), "examples/fraud/": f"{example}/"}
    for old, new in subst.items():
        lines = [line.replace(old, new) for line in lines]
    return [shlex.split(line) for line in lines]


@pytest.fixture(scope="module")
def applied(example: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The demo's `fti local apply` (predictions and a shifted batch) on the smaller data set."""
    state = tmp_path_factory.mktemp("state")
    score_requests(state / "volume" / "fraud" / "score-requests")
    apply = _demo_commands(state, example)[0]
    assert apply[:2] == ["local", "apply"] and "--shifted" in apply, apply
    return state, _fti(*apply)


def _items(state: Path) -> dict[str, dict]:
    listing = json.loads(_fti("local", "status", "--state-dir", str(state), "-o", "json").stdout)
    return {f"{i['kind']}/{i['metadata']['name']}": i for i in listing["items"]}


def test_apply_runs_every_pipeline_and_records_status(applied: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    state, proc = applied
    assert "predictions over HTTP" in proc.stdout
    items = _items(state)
    for name in ("card-transactions", "card-profiles"):
        run = items[f"FeaturePipeline/{name}"]["status"]["versions"][0]["lastRun"]
        assert run["succeeded"] and run["rowsWritten"] > 0 and run["rowsRejected"] == 0
    tp = items["TrainingPipeline/fraud-model"]["status"]
    mv = tp["modelVersions"][0]
    assert mv["phase"] in ("Validated", "Rejected") and mv["featureView"] == {"name": "fraud", "version": 1}
    assert {g["name"] for g in mv["featureGroups"]} == {"card_transactions", "card_profiles"}
    assert Path(mv["storageUri"].removeprefix("file://"), "model.joblib").is_file()
    assert mv["phase"] == "Validated", f"example model not validated: {mv.get('message')}"
    online = items["InferenceService/fraud-online"]["status"]
    assert online["stable"]["model"] == mv["version"] and online["stable"]["featureView"] == 1
    assert online["stable"]["storageUri"] == mv["storageUri"] and online["stable"]["featureGroups"] == mv["featureGroups"]
    assert {c["type"]: c["reason"] for c in online["conditions"]}["Progressing"] == "RolloutComplete"
    batch = items["InferenceService/fraud-batch"]["status"]
    assert batch["lastRun"]["succeeded"] and batch["lastRun"]["rowsScored"] > 0


def test_demo_shows_a_drift_report_for_its_shifted_batch(
    applied: tuple[Path, subprocess.CompletedProcess[str]], example: Path
) -> None:
    """`make demo`'s last step: the monitoring job, locally, finds the shifted batch's drift."""
    state, proc = applied
    assert "shifted requests (amount x5, category all" in proc.stdout, proc.stdout
    monitor = _demo_commands(state, example)[1]
    assert monitor[:2] == ["local", "monitor"], monitor
    text = _fti(*monitor).stdout
    assert "method psi" in text and "Drifted" in text, text
    assert "stable v1: top features" in text and "amount" in text and "category" in text, text
    html = text.split("report: ", 1)[1].split("\n", 1)[0]
    report = Path(html.removeprefix("file://"))
    assert report.is_file() and report.with_name("report.json").is_file(), text
    result = json.loads(report.with_name("report.json").read_text())
    [stable] = result["revisions"]
    assert stable["status"] == "Drifted" and stable["rows"] >= 500
    drifted = {f["name"] for f in stable["features"] if f["drifted"]}
    assert {"amount", "category"} <= drifted, stable["features"]


def test_batch_predictions_carry_versions(applied: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    state, _ = applied
    files = sorted((state / "volume" / "fraud" / "predictions").rglob("*.parquet"))
    assert files, "no prediction files written"
    table = pq.read_table(files[0])
    names = set(table.column_names)
    assert {"cc_num"} <= names and any("model" in n for n in names) and any("feature" in n.lower() for n in names)


def test_second_apply_is_incremental_and_does_not_retrain(
    applied: tuple[Path, subprocess.CompletedProcess[str]], example: Path
) -> None:
    state, _ = applied
    before = _items(state)["TrainingPipeline/fraud-model"]["status"]["modelVersions"]
    proc = _fti(
        "local",
        "apply",
        "-f",
        str(example / "feature-pipeline-transactions.yaml"),
        "-f",
        str(example / "training-pipeline.yaml"),
        "--state-dir",
        str(state),
    )
    assert "not retraining" in proc.stderr
    items = _items(state)
    run = items["FeaturePipeline/card-transactions"]["status"]["versions"][0]["lastRun"]
    assert run["succeeded"] and run["rowsWritten"] == 0  # nothing newer than the watermark
    assert items["TrainingPipeline/fraud-model"]["status"]["modelVersions"] == before


def test_bad_manifest_names_the_field_and_changes_nothing(example: Path, tmp_path: Path) -> None:
    bad = yaml.safe_load((example / "feature-pipeline-profiles.yaml").read_text())
    bad["spec"]["featureGroup"]["version"] = 0
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    state = tmp_path / "state"
    proc = _fti("local", "apply", "-f", str(tmp_path / "bad.yaml"), "--state-dir", str(state), check=False)
    assert proc.returncode == 1
    assert "spec.featureGroup.version" in proc.stderr
    assert not (state / "store").exists()


def test_serve_answers_predict_and_sigterm_stops_the_server(
    applied: tuple[Path, subprocess.CompletedProcess[str]], example: Path
) -> None:
    import os
    import signal

    from support.wait import wait_until

    state, _ = applied
    serve = subprocess.Popen(
        [*FTI, "local", "serve", "fraud-online", "-f", str(example), "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"COLUMNS": "200", **_env()},
    )
    try:
        server = wait_until(
            lambda: json.loads((state / "state.json").read_text()).get("servers", {}).get("fraud/fraud-online"),
            timeout=120,
            description="fti local serve to record its server",
        )
        answer = json.loads(
            _fti(
                "local",
                "predict",
                "fraud-online",
                "--state-dir",
                str(state),
                "--data",
                json.dumps({"cc_num": 4_000_000_000_000_001, "amount": 12.5, "category": "grocery"}),
            ).stdout
        )
        assert answer["modelVersion"] >= 1 and answer["featureViewVersion"] == 1 and len(answer["predictions"]) == 1
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) is not None

        def server_gone() -> bool:
            try:
                os.kill(server["pid"], 0)
            except ProcessLookupError:
                return True
            return False

        wait_until(server_gone, timeout=30, description="the model server to stop with fti local serve")
    finally:
        if serve.poll() is None:
            serve.kill()


def test_rollout_verbs_go_through_the_same_reconcilers(
    applied: tuple[Path, subprocess.CompletedProcess[str]], example: Path
) -> None:
    """A new model version rolls out, `fti local rollout undo` brings the previous pair back pinned."""
    state, _ = applied
    _fti("local", "apply", "-f", str(example), "--state-dir", str(state), "--retrain", "--predict", "1")
    online = _items(state)["InferenceService/fraud-online"]["status"]
    latest = _items(state)["TrainingPipeline/fraud-model"]["status"]["latestValidatedVersion"]
    assert online["stable"]["model"] == latest >= 2
    assert [h["model"] for h in online["history"]][:1] == [latest - 1]
    env = {"FTI_STATE_DIR": str(state)}
    undo = subprocess.run(
        [*FTI, "local", "rollout", "undo", "fraud-online", "-n", "fraud"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**_env(), **env},
        check=False,
    )
    assert undo.returncode == 0, undo.stderr
    online = _items(state)["InferenceService/fraud-online"]["status"]
    assert online["stable"]["model"] == latest - 1 and online["pinned"]["model"] == latest - 1
    assert online["handled"]["rollback"].startswith("previous@")
    shown = subprocess.run(
        [*FTI, "local", "rollout", "status", "fraud-online", "-n", "fraud", "--no-watch"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**_env(), **env},
        check=False,
    )
    assert f"model {latest - 1}" in shown.stdout and "pinned" in shown.stdout


def _readme_commands() -> list[list[str]]:
    """The README's block of `fti local` commands (after `make demo`), in order, as argv."""
    import shlex

    text = (REPO / "README.md").read_text()
    section = text.split("## The embedded runner", 1)[1]
    block = section.split("```console\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]
    return [c for c in commands if c]


def test_readme_commands_after_the_demo_run_in_order(
    applied: tuple[Path, subprocess.CompletedProcess[str]], example: Path, tmp_path: Path
) -> None:
    """Typed in a checkout where `make demo` ran: `.fti/local` is the applied state (the demo's
    STATE_DIR is the CLI's default, tests/unit/test_first_minutes.py), `examples/fraud/` the
    example with the smaller data set. No command gets a --state-dir the README does not show."""
    import signal

    from support.wait import wait_until

    state, _ = applied
    (tmp_path / ".fti").mkdir()
    (tmp_path / ".fti" / "local").symlink_to(state)
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "fraud").symlink_to(example)
    commands = _readme_commands()
    assert commands[0][:2] == ["source", ".venv/bin/activate"], commands[0]
    ran, serving = [], None
    try:
        for argv in commands[1:]:
            assert argv[:2] in (["fti", "local"], ["fti", "quarantine"]), f"not an fti local/quarantine command: {argv}"
            cmd = [*FTI, *argv[1:]]
            if argv[1] == "quarantine":  # reads the store of .fti/local by default, like fti local
                proc = subprocess.run(
                    cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, env={"COLUMNS": "200", **_env()}, check=False
                )
                assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
                # The demo's data is clean: it says so, naming where it looked.
                assert "fraud" in proc.stdout + proc.stderr, f"fti quarantine list: {proc.stdout!r} {proc.stderr!r}"
                ran.append(f"quarantine {argv[2]}")
                continue
            if argv[2] == "serve":  # runs until Ctrl-C: in the background, as in another shell
                serving = subprocess.Popen(
                    cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={"COLUMNS": "200", **_env()}
                )
                wait_until(
                    lambda: json.loads((state / "state.json").read_text()).get("servers", {}).get("fraud/fraud-online"),
                    timeout=120,
                    description="fti local serve to record its server",
                )
                ran.append(argv[2])
                continue
            proc = subprocess.run(
                cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, env={"COLUMNS": "200", **_env()}, check=False
            )
            assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            assert "no resources" not in proc.stderr, proc.stderr
            if argv[2:] == ["status"]:
                assert "fraud-online" in proc.stdout and "fraud-model" in proc.stdout, proc.stdout
            if argv[2] == "predict":
                assert len(json.loads(proc.stdout)["predictions"]) == 1
            if argv[2:4] == ["rollout", "history"]:
                assert "fraud-online" in proc.stdout or "model" in proc.stdout, proc.stdout
            if argv[2] == "monitor":  # the served model's profile exists; the log is short of minRows
                assert "stable" in proc.stdout and "report:" in proc.stdout, proc.stdout
            ran.append(argv[2])
    finally:
        if serving is not None:
            serving.send_signal(signal.SIGTERM)
            serving.wait(timeout=60)
    assert ran == ["status", "apply", "serve", "predict", "status", "validate", "rollout", "monitor", "quarantine list"], ran
