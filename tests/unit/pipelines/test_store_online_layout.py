"""The online store package's shape: no import circle, no reaching into private members,
one registration table whose every backend declares its transient errors and is run by
the shared `online_store` fixture (docs/stores.md)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from fti_pipelines.store import online
from fti_pipelines.store.online import BACKENDS, OnlineStore, backend_for, transient_errors

PACKAGE = "fti_pipelines.store.online"
ROOT = Path(online.__file__).parent


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join([PACKAGE, *parts])] = path
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules `name` imports anywhere in its body (functions and TYPE_CHECKING included)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = (
                importlib.util.resolve_name(
                    "." * node.level + (node.module or ""), name if is_package else name.rpartition(".")[0]
                )
                if node.level
                else node.module
            )
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import submodule`
    return {m for m in found if m in known and m != name}


def test_the_package_has_no_import_circle():
    mods = modules()
    graph = {name: imports_of(name, path, set(mods)) for name, path in mods.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])
    # the package imports no backend: backends are named in the table and imported on use
    assert not any(".sqlite" in m or ".redis" in m for m in graph[PACKAGE] | graph[f"{PACKAGE}.registry"])


def test_no_module_reaches_into_another_objects_private_members():
    offenders = [
        f"{name}:{node.lineno} .{node.attr}"
        for name, path in modules().items()
        for node in ast.walk(ast.parse(path.read_text()))
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        )
    ]
    assert offenders == []


@pytest.mark.parametrize("scheme", sorted(BACKENDS))
def test_every_registered_backend_is_a_store_and_declares_its_transient_errors(scheme):
    backend = backend_for(f"{scheme}://")
    assert issubclass(backend, OnlineStore) and not getattr(backend, "__abstractmethods__", None)
    assert "transient_errors" in vars(backend), f"{backend.__name__} must declare its own transient_errors"
    assert set(OnlineStore.transient_errors) <= set(backend.transient_errors)
    assert transient_errors(f"{scheme}://host") == backend.transient_errors


def test_an_unknown_or_missing_store_has_the_generic_transient_errors():
    assert transient_errors(None) == transient_errors("nosuch://x") == OnlineStore.transient_errors
    with pytest.raises(ValueError, match="known schemes"):
        backend_for("nosuch://x")


def test_the_shared_fixture_runs_every_backend_folder():
    from support.online_stores import CASES

    folders = {target.lstrip(".").split(".")[0] for target in BACKENDS.values()}
    assert folders == set(CASES)
    assert all((ROOT / folder).is_dir() for folder in folders)
