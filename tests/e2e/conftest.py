"""End-to-end tests: real containers on a real node (tests/node) or on kind (test_kind.py).

tests/ is on sys.path (pytest.ini), so the node fixtures import as ``node.fixtures``.
"""

from node.fixtures import base_image, kserve_standin, node, node_images  # noqa: F401  (fixtures)
