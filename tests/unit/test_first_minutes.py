"""A newcomer's first commands: `make demo` and then the README's `fti local status`.

- the demo writes where `fti local` reads by default (one state directory);
- `fti local status` on an empty or missing state says where it looked and what to run;
- `make install` (which `make demo` runs first) prints one line, not pip's output: that goes
  to a log file it names, and a failed install prints the log's tail.

tests/integration/test_local_apply.py runs the README's `fti local` commands in order.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fti_operator.cli import DEFAULT_STATE_DIR, app

REPO = Path(__file__).resolve().parents[2]


def test_make_demo_writes_where_fti_local_reads():
    makefile = (REPO / "Makefile").read_text()
    [state_dir] = re.findall(r"^STATE_DIR \?= (\S+)$", makefile, re.MULTILINE)
    assert Path(state_dir) == DEFAULT_STATE_DIR
    demo = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert "--state-dir $(STATE_DIR)" in demo


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_status_of_no_state_says_where_it_looked_and_what_to_run(tmp_path, state):
    state_dir = tmp_path / "nowhere"
    if state == "empty":
        state_dir.mkdir()
        (state_dir / "state.json").write_text('{"kube": {}, "servers": {}}')
    result = CliRunner().invoke(app, ["local", "status", "--state-dir", str(state_dir)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # rich wraps long lines (paths have no spaces here)
    assert str(state_dir.resolve()) in "".join(result.output.split())
    assert ("has no state file" if state == "missing" else "holds no fti resources") in text
    assert "make demo" in text and "fti local apply -f examples/fraud/" in text


def _fake_python(bin_dir: Path, pip_exit: int) -> Path:
    """A `python` whose `-m venv DIR` makes a venv with a noisy `pip` (exit code pip_exit); any
    other use (the wheelhouse key, tools/requirements.py) prints a word and succeeds."""
    bin_dir.mkdir()
    pip = f'#!/bin/sh\necho "Collecting something"\necho "BuildBackendWarning: Editable installation." >&2\nexit {pip_exit}\n'
    python = bin_dir / "python"
    python.write_text(
        "#!/bin/sh\n"
        'case "$1" in -m) [ "$2" = venv ] || exit 2;; *) echo fake; exit 0;; esac\n'
        'mkdir -p "$3/bin"\n'
        f"cat > \"$3/bin/pip\" <<'EOF'\n{pip}EOF\n"
        'chmod +x "$3/bin/pip"; cp "$0" "$3/bin/python"\n'
    )
    python.chmod(0o755)
    return python


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
@pytest.mark.parametrize("pip_exit", [0, 1])
def test_make_install_keeps_pip_output_in_a_log(tmp_path, pip_exit):
    python = _fake_python(tmp_path / "fake", pip_exit)
    venv = tmp_path / "venv"
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), "install", f"PYTHON={python}", f"VENV={venv}"],
        env={**os.environ, "FTI_CACHE_DIR": str(tmp_path / "cache")},  # the wheelhouse goes there
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    log = venv / "install.log"
    assert "BuildBackendWarning" in log.read_text() and "Collecting" in log.read_text()
    if pip_exit == 0:
        assert result.returncode == 0, result.stderr
        first, timing = result.stdout.strip().splitlines()  # pip's own output stays in the log
        assert first == f"installing into {venv} (pip output: {log})"
        assert re.fullmatch(r"installed in \d+s \(filling the wheelhouse first\)", timing), timing
        assert not result.stderr
        assert (venv / ".installed").exists()
    else:
        assert result.returncode != 0
        assert "BuildBackendWarning" in result.stdout + result.stderr  # the log's tail, to see why
        assert f"pip install failed: see {log}" in result.stderr
        assert not (venv / ".installed").exists()


def test_rollout_verbs_on_no_state_say_where_they_looked(tmp_path):
    """One line naming the state directory and what lists it, exit 1, no traceback."""
    result = CliRunner().invoke(
        app, ["local", "rollout", "history", "fraud-online", "-n", "fraud"], env={"FTI_STATE_DIR": str(tmp_path / "none")}
    )
    assert result.exit_code == 1, result.output
    text = "".join(result.output.split())
    assert "noInferenceServicefraud/fraud-onlinein" + str((tmp_path / "none").resolve()) in text
    assert "fti local status" in result.output and "Traceback" not in result.output
