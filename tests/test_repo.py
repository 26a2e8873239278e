"""Repository-wide rules: layout, notebooks without outputs, parameters cells, imports."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOP_LEVEL = ["README.md", "requirements.txt", "pyproject.toml", "Makefile", "deepul_helpers", "lectures",
             "homeworks", "solutions", "grading", "tests", ".ci/run"]


def _tracked(pattern: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", pattern], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:  # not a git checkout (e.g. an unpacked archive): look at the files
        return sorted(REPO.glob(f"**/{pattern}"))
    return [REPO / p for p in out.stdout.split()]


NOTEBOOKS = [p for p in _tracked("*.ipynb") if ".venv" not in p.parts and "out" not in p.parts]


def test_top_level_layout():
    missing = [p for p in TOP_LEVEL if not (REPO / p).exists()]
    assert not missing, f"missing from the repository root: {missing}"


def test_requirements_pin_torch_and_install_the_package():
    lines = [ln.split("#")[0].strip() for ln in (REPO / "requirements.txt").read_text().splitlines()]
    torch_lines = [ln for ln in lines if re.match(r"torch\s*([=<>!~]|$)", ln)]  # torch itself, not torchmetrics
    assert torch_lines and all(("==2.13" in ln or "<2.14" in ln) for ln in torch_lines), torch_lines
    assert "-e ." in lines


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_committed_notebooks_have_no_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"


@pytest.mark.parametrize(
    "path", [p for p in NOTEBOOKS if p.parts[len(REPO.parts)] in ("lectures", "solutions", "homeworks")],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_notebooks_have_a_parameters_cell(path):
    nb = json.loads(path.read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    names = {t.id for node in ast.parse("".join(cells[0]["source"])).body if isinstance(node, ast.Assign)
             for t in node.targets if isinstance(t, ast.Name)}
    assert {"quick", "seed", "device"} <= names, f"{path.name}: parameters cell defines {sorted(names)}"


def test_importing_the_package_imports_no_model_family():
    # models/_common.py (device, level and shape checks) is no family; the grader flags only family imports
    families = sorted(p.name for p in (REPO / "deepul_helpers" / "models").iterdir() if p.is_dir() and p.name[0] != "_")
    code = (f"FAMILIES = {families!r}; import sys, deepul_helpers, deepul_helpers.data, deepul_helpers.train, "
            "deepul_helpers.metrics, deepul_helpers.plot, deepul_helpers.config, deepul_helpers.notebook, "
            "deepul_helpers.timing, deepul_helpers.homework.kit;"
            "print([m for m in sys.modules if m.startswith('deepul_helpers.models.') and m.split('.')[2] in FAMILIES])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_package_has_no_star_imports_and_no_cuda_at_import():
    offenders = []
    for path in (REPO / "deepul_helpers").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only: code that runs at import
            if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
                offenders.append(f"{path}: star import")
            if not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) and ".cuda(" in ast.unparse(
                node
            ):
                offenders.append(f"{path}: .cuda() at import")
    assert not offenders, offenders


def test_cli_help_lists_every_command():
    from deepul_helpers.cli import COMMANDS

    out = subprocess.run([sys.executable, "-m", "deepul_helpers", "--help"], capture_output=True, text=True,
                         cwd=REPO, check=True)
    for name in COMMANDS:
        assert name in out.stdout


def test_cli_unknown_command_lists_known_ones():
    out = subprocess.run([sys.executable, "-m", "deepul_helpers", "frobnicate"], capture_output=True, text=True,
                         cwd=REPO)
    assert out.returncode == 2 and "unknown command 'frobnicate'" in out.stderr and "data" in out.stderr
