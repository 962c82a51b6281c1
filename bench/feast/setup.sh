#!/usr/bin/env bash
# Creates bench/.venv-feast: Feast in its own venv, so its pins (pyarrow, pandas,
# pydantic...) never touch the project's .venv. Used only by bench/training_join.py
# for the side-by-side comparison with get_historical_features (file offline store).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="$here/.venv-feast"
FEAST_VERSION="${FEAST_VERSION:-0.67.0}"
PYTHON="${PYTHON:-python3.11}"
if [ ! -x "$venv/bin/python" ]; then
  "$PYTHON" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "feast==${FEAST_VERSION}" psutil
"$venv/bin/python" -c "import feast; print('feast', feast.__version__)"
