"""Real text for the classify tests: gettext catalogs (prose per language) and source files.

Handed out as fixtures: with ``--import-mode=importlib`` test modules cannot import conftest.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Callable
from glob import glob
from pathlib import Path

import pytest

from corpusmill.curation.classify.code_corpus import read_source_text

CATALOG_DOMAINS = ("coreutils", "bash", "grep", "dpkg", "apt", "findutils", "diffutils", "tar")


def read_catalog_document(locale: str, min_chars: int = 400, skip: int = 0) -> str:
    """About ``min_chars`` of real translated messages from one of the locale's catalogs."""
    for domain in CATALOG_DOMAINS:
        path = Path(f"/usr/share/locale/{locale}/LC_MESSAGES/{domain}.mo")
        text = read_source_text(str(path)) if path.exists() else None
        if not text:
            continue
        lines = [line for line in text.splitlines() if len(line) > 40][skip:]
        document = ""
        for line in lines:
            document += line + "\n"
            if len(document) >= min_chars:
                return document
    pytest.fail(f"no gettext catalog with {min_chars} chars of {locale} text on this machine")


def find_first(pattern: str) -> Path:
    matches = sorted(glob(pattern, recursive=True))
    if not matches:
        pytest.fail(f"expected a file matching {pattern} on this machine")
    return Path(matches[0])


@pytest.fixture(scope="session")
def catalog_document() -> Callable[..., str]:
    return read_catalog_document


@pytest.fixture(scope="session")
def first_match() -> Callable[[str], Path]:
    return find_first


@pytest.fixture(scope="session")
def numpy_table_text() -> str:
    """2,000 characters of a real number table: numpy's own random-generator test data (installed with numpy)."""
    import numpy

    tables = sorted(Path(numpy.__file__).parent.rglob("random/tests/data/*-testset-*.csv"))
    if not tables:
        pytest.fail("numpy ships no tests/data/*.csv here")
    return tables[0].read_text()[:2000]


@pytest.fixture(scope="session")
def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])
