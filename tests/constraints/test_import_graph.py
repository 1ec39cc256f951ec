"""The Triton backend imports only downward: its own kernels and the leaf module of shared types."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRITON_DIR = ROOT / "trudi" / "constraints" / "triton"
ALLOWED = ("trudi.constraints.base", "trudi.constraints.triton")


def _trudi_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("trudi"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("trudi"))
    return names


@pytest.mark.parametrize("path", sorted(TRITON_DIR.glob("*.py")), ids=lambda p: p.name)
def test_triton_backend_imports_only_downward(path):
    upward = {m for m in _trudi_imports(path) if not m.startswith(ALLOWED)}
    assert not upward, (
        f"{path.name} imports {sorted(upward)}; shared pieces go in constraints/base.py"
    )


def test_base_is_a_leaf():
    assert not _trudi_imports(ROOT / "trudi" / "constraints" / "base.py")


def test_triton_package_imports_first_in_a_fresh_interpreter():
    pytest.importorskip("triton")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import trudi.constraints.triton as t; print(t.project_transitions)",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
