"""A near-duplicate evaluation set of real documents found on this machine.

Natural near-duplicates, no synthetic edits:
  stdlib     the same standard-library module in every installed Python
             (2.7 ... 3.13 under pyenv, Debian's python3): several versions of
             one document
  vendored   pip's and setuptools' vendored packages, copied into each Python's
             site-packages at different versions
  copyright  Debian's /usr/share/doc/*/copyright: licences restated with small
             edits per package
  license    LICENSE / COPYING files shipped by Python packages
Documents are whole files of 500 B to 200 KB that decode as UTF-8.
"""

from __future__ import annotations

import glob
from pathlib import Path

import pyarrow as pa

MIN_BYTES = 500
MAX_BYTES = 200_000

SOURCES = {
    "stdlib": [
        "/root/.pyenv/versions/*/lib/python*/*.py",
        "/root/.pyenv/versions/*/lib/python*/*/*.py",
        "/usr/lib/python3.*/*.py",
    ],
    "vendored": ["/root/.pyenv/versions/*/lib/python*/site-packages/*/_vendor/**/*.py"],
    "copyright": ["/usr/share/doc/*/copyright"],
    "license": [
        "/root/.pyenv/versions/*/lib/python*/site-packages/*/LICENSE*",
        "/root/.pyenv/versions/*/lib/python*/site-packages/*/COPYING*",
    ],
}
EXCLUDED_PARTS = {"test", "tests", "idlelib", "lib2to3", "site-packages"}


def _paths(source: str) -> list[Path]:
    found: set[Path] = set()
    for pattern in SOURCES[source]:
        found.update(Path(p) for p in glob.glob(pattern, recursive=True))
    paths = sorted(p for p in found if p.is_file())
    if source == "stdlib":
        paths = [p for p in paths if not EXCLUDED_PARTS & set(p.parts[p.parts.index("lib") + 2 :])]
    return paths


def _read(path: Path) -> str | None:
    size = path.stat().st_size
    if not MIN_BYTES <= size <= MAX_BYTES:
        return None
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return None


def eval_documents(max_per_source: int | None = None) -> pa.Table:
    """id (the file path), text, source; sorted by id so every run sees the same set."""
    ids, texts, sources = [], [], []
    for source in SOURCES:
        taken = 0
        for path in _paths(source):
            text = _read(path)
            if text is None:
                continue
            ids.append(str(path))
            texts.append(text)
            sources.append(source)
            taken += 1
            if max_per_source is not None and taken == max_per_source:
                break
    table = pa.table({"id": ids, "text": texts, "source": sources})
    return table.sort_by("id")
