"""The layering, enforced by reading the code: pipelines -> stage packages -> core, never back.

Stage packages (curation/, tokenizer/, trainer/) never import corpusmill.pipelines (not even
inside a function), never parse arguments, print or exit: they are handed an executor and
return data. Everything imports as corpusmill.…, and the wheel has that one top-level package.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY_DIRS = ("curation", "tokenizer", "trainer")
PACKAGE_DIRS = (*LIBRARY_DIRS, "pipelines")
OUR_TOP_LEVEL_NAMES = {"curation", "tokenizer", "pipelines", "trainer"}
EXIT_CALLS = {("sys", "exit"), ("os", "_exit")}


def _modules(*dirs: str) -> list[Path]:
    return sorted(path for name in dirs for path in (ROOT / name).rglob("*.py"))


def _imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append((node.lineno, node.module))
    return names


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for line, name in _imported_names(tree):
        if name == "corpusmill.pipelines" or name.startswith("corpusmill.pipelines."):
            found.append(f"{path.relative_to(ROOT)}:{line}: imports {name}")
        if name in ("argparse",):
            found.append(f"{path.relative_to(ROOT)}:{line}: imports argparse")
    for node in ast.walk(tree):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("print", "exit", "quit"):
            found.append(f"{where}: calls {node.func.id}()")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
            if (node.func.value.id, node.func.attr) in EXIT_CALLS:
                found.append(f"{where}: calls {node.func.value.id}.{node.func.attr}()")
        if isinstance(node, ast.Raise) and node.exc is not None:
            raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(raised, ast.Name) and raised.id == "SystemExit":
                found.append(f"{where}: raises SystemExit")
    return found


def test_stage_packages_never_import_the_runner_print_or_exit() -> None:
    violations = [line for path in _modules(*LIBRARY_DIRS) for line in _violations(path)]
    assert violations == []


def test_every_import_of_our_code_goes_through_the_corpusmill_package() -> None:
    bare = []
    for path in _modules(*PACKAGE_DIRS, "tests", "benchmarks"):
        for line, name in _imported_names(ast.parse(path.read_text(), str(path))):
            if name.split(".")[0] in OUR_TOP_LEVEL_NAMES:
                bare.append(f"{path.relative_to(ROOT)}:{line}: import {name}")
    assert bare == []


def test_the_checker_catches_what_it_looks_for(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import argparse\nimport sys\n\ndef f():\n    from corpusmill.pipelines.cli import main\n"
        "    print('x')\n    sys.exit(2)\n    raise SystemExit(2)\n"
    )
    bad = bad.rename(ROOT / "curation" / "_layering_probe.py")
    try:
        found = _violations(bad)
    finally:
        bad.unlink()
    assert len(found) == 5, found


@pytest.mark.timeout(600)
def test_the_wheel_has_one_top_level_package(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("corpusmill-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"corpusmill"}
    assert "corpusmill/curation/dataset.py" in names and "corpusmill/pipelines/nemotron4.yaml" in names
    assert not any(name.startswith(("corpusmill/tests/", "corpusmill/benchmarks/")) for name in names)
