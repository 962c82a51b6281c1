"""Integration tests run against a real control plane (tests/controlplane, DESIGN §7).

The fixtures and hooks are imported here (rather than via ``pytest_plugins``,
which pytest only honours in the rootdir conftest) so this directory works on
its own: ``pytest tests/integration``.
"""

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))  # make the `tests.controlplane` package importable

from tests.controlplane.fixtures import *  # noqa: E402,F401,F403  (fixtures + hooks)
