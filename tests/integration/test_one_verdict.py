"""One verdict: every manifest under tests/manifests/ goes through `fti local validate` and through
`kubectl apply [--server-side] --dry-run=server --validate=strict` against the real API server, and both accept
it or both refuse it, naming the same field.

The only differences are deliberate and marked in the files (tests/support/manifest_corpus.py):
`# refused-by: operator` (the API server cannot judge it; the operator reports InvalidSpec) and
`# kubectl: accepts` (kubectl lets a duplicate YAML key through; fti local does not). A case so
marked must really be accepted by kubectl, so the marks cannot go stale.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fti_operator.api.yaml_strict import escape
from fti_operator.cli import app
from support.manifest_corpus import ROOT, invalid_cases, invalid_yaml_cases, path_matches

pytestmark = pytest.mark.integration

FILES = sorted(ROOT.rglob("*.yaml"))
OPERATOR_ONLY = {c.path for c in invalid_cases() if c.refused_by == "operator"}
KUBECTL_ACCEPTS = {c.path for c in invalid_yaml_cases() if c.kubectl_accepts}
# Problems about the stream itself: kubectl reports them before any field exists.
WHOLE_DOCUMENT = {"<yaml>", "<root>", "<file>", "apiVersion", "kind"}
_SERVER_PATH = re.compile(r'(?:^|\* |is invalid: |unknown field "|field ")((?:spec|metadata)(?:\.[^\s:",\[\]]+|\[[^\]]+\])*)')


def local_verdict(path: Path) -> tuple[bool, list[str], str]:
    """(accepted, field paths, output) from `fti local validate -f path`, in-process."""
    result = CliRunner().invoke(app, ["local", "validate", "-f", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output, result.output
    paths = []
    for line in result.output.splitlines():
        if line.startswith(f"{path}:doc#"):
            _, field, _message = line.split(": ", 2)
            paths.append(field)
    assert result.exit_code == 0 or paths, f"refused without a FILE:doc#N: field: message line:\n{result.output}"
    return result.exit_code == 0, paths, result.output


def server_verdict(cluster, namespace: str, path: Path, apply: list[str]) -> tuple[bool, list[str], str]:
    result = cluster.kubectl(*apply, "--dry-run=server", "--validate=strict", "-n", namespace, "-f", path, check=False)
    text = escape(result.stderr)
    paths = [re.sub(r"\[([^\]0-9][^\]]*)\]", r".\1", m) for m in _SERVER_PATH.findall(text)]
    return result.returncode == 0, paths, text


def same_field(local: list[str], server: list[str], server_text: str) -> bool:
    if any(p in WHOLE_DOCUMENT for p in local):
        return True
    if not server and "error parsing" in server_text:
        # kubectl's YAML-to-JSON step (NaN, infinities) names no field; fti local does.
        return True
    return any(p in server_text for p in local) or any(path_matches(p, s) for p in local for s in server)


def test_every_corner_of_the_corpus_is_here():
    assert {p.parent.name for p in FILES} == {"valid", "invalid", "invalid-yaml"}
    assert len(FILES) >= 100


@pytest.mark.parametrize("apply", [["apply"], ["apply", "--server-side"]], ids=["client-side", "server-side"])
@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fti_local_and_the_api_server_agree(path, apply, control_plane, fti_crds, module_namespace):
    # A server-side dry run stores nothing, so every case can use the module's one namespace.
    local_ok, local_paths, local_out = local_verdict(path)
    server_ok, server_paths, server_out = server_verdict(control_plane, module_namespace, path, apply)
    where = f"\nfti local:\n{local_out}\nkubectl:\n{server_out}"
    if path in OPERATOR_ONLY or path in KUBECTL_ACCEPTS:
        assert not local_ok and server_ok, f"{path.name} is marked as accepted by kubectl and refused locally{where}"
        return
    assert local_ok == server_ok, f"{path.name}: fti local {'accepts' if local_ok else 'refuses'}, the API server "
    f"{'accepts' if server_ok else 'refuses'}{where}"
    if not local_ok:
        assert same_field(local_paths, server_paths, server_out), f"{path.name}: different fields{where}"
