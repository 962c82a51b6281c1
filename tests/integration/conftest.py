"""Integration tests run against a real control plane (tests/controlplane, docs/contributing.md).

The fixtures and hooks are imported here (rather than via ``pytest_plugins``,
which pytest only honours in the rootdir conftest) so this directory works on
its own: ``pytest tests/integration``.
"""

# tests/ is on sys.path (pytest.ini `pythonpath`), never the repo root: its `operator/`
# directory must not shadow the standard library's `operator`.
from controlplane.fixtures import *  # noqa: F403  (fixtures + hooks)
