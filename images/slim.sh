#!/bin/sh
# Trim a freshly installed venv for an image (every Dockerfile's dependency stage):
#
#   sh images/slim.sh /opt/venv
#
# Libraries ship their own test suites (pandas/tests alone is ~40 MB with its bytecode);
# nothing imports them at run time, so the `tests` packages go (never a `test` or
# `testing` module, which some libraries do import). Then everything left is compiled to
# bytecode, since the images run with a read-only root filesystem and
# PYTHONDONTWRITEBYTECODE (docs/images.md).
set -eu
venv="$1"
site="$(echo "$venv"/lib/python3*/site-packages)"
find "$site" -mindepth 2 -type d -name tests -prune -exec rm -rf {} +
"$venv/bin/python" -m compileall -q "$site" >/dev/null
