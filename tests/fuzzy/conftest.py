"""Real documents with natural near-duplicates, found on the machine.

Several installed Pythons ship different releases of the same stdlib modules,
and Debian's copyright files repeat the same licences with small edits: real
near-duplicates at every similarity.
"""

from __future__ import annotations

import glob
import sysconfig
from pathlib import Path

import pytest

MODULES = ("json/__init__.py", "json/decoder.py", "textwrap.py", "string.py", "shlex.py", "glob.py", "fnmatch.py")


def python_stdlib_dirs() -> list[Path]:
    """Every stdlib directory of every Python installed here, the running one first."""
    candidates = [sysconfig.get_paths()["stdlib"], *sorted(glob.glob("/usr/lib/python3.*"))]
    candidates += sorted(glob.glob("/root/.pyenv/versions/*/lib/python*"))
    candidates += sorted(glob.glob("/usr/local/lib/python3.*"))
    seen, dirs = set(), []
    for candidate in candidates:
        path = Path(candidate)
        if (path / "textwrap.py").exists() and path.resolve() not in seen:
            seen.add(path.resolve())
            dirs.append(path)
    return dirs


def module_versions(modules: tuple[str, ...] = MODULES) -> list[tuple[str, str]]:
    """(id, text) of each module in each installed Python: releases of one file are near-duplicates."""
    documents = []
    for directory in python_stdlib_dirs():
        for module in modules:
            path = directory / module
            if path.exists():
                documents.append((f"{directory}/{module}", path.read_text(encoding="utf-8", errors="replace")))
    return documents


def copyright_files(limit: int) -> list[tuple[str, str]]:
    paths = sorted(glob.glob("/usr/share/doc/*/copyright"))[:limit]
    return [(path, Path(path).read_text(encoding="utf-8", errors="replace")) for path in paths]


@pytest.fixture(scope="session")
def near_duplicate_documents() -> list[tuple[str, str]]:
    documents = module_versions() + copyright_files(60)
    if len(python_stdlib_dirs()) < 2:
        pytest.skip("needs at least two installed Python versions for natural near-duplicates")
    return documents
