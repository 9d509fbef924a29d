"""Benchmark corpora for near-duplicate removal: real files cut into document-sized chunks.

Every document is 40 consecutive lines of a real file on this machine: Python
sources of every installed Python and its packages, C headers, and Debian's
documentation. Several Pythons ship different releases of the same modules,
so the corpus holds natural near-duplicates at a realistic rate. Deterministic
for a given machine: files are read in sorted order.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

LINES_PER_DOC = 40
MIN_DOC_BYTES = 200
PATTERNS = {
    "python": ["/root/.pyenv/versions/*/lib/python*/**/*.py", "/usr/lib/python3*/**/*.py"],
    "headers": ["/usr/include/**/*.h"],
    "docs": ["/usr/share/doc/**/*.txt", "/usr/share/doc/*/copyright", "/usr/share/doc/**/README*"],
}


def _files() -> Iterator[tuple[str, Path]]:
    for source, patterns in PATTERNS.items():
        paths = sorted({Path(p) for pattern in patterns for p in glob.glob(pattern, recursive=True)})
        for path in paths:
            if path.is_file() and not path.name.endswith(".gz"):
                yield source, path


def _chunks() -> Iterator[tuple[str, str]]:
    for source, path in _files():
        try:
            lines = path.read_bytes().decode("utf-8").splitlines(keepends=True)
        except (UnicodeDecodeError, OSError):
            continue
        for start in range(0, len(lines), LINES_PER_DOC):
            text = "".join(lines[start : start + LINES_PER_DOC])
            if len(text) >= MIN_DOC_BYTES:
                yield source, text


def build_chunk_corpus(root: Path, docs: int, shards: int = 8) -> Path:
    """A dataset directory of ``docs`` chunk documents in ``shards`` Parquet files (reused if present)."""
    done = root / f"_complete-{docs}"
    if done.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    per_shard = -(-docs // shards)
    texts: list[str] = []
    sources: list[str] = []
    written = 0
    for source, text in _chunks():
        texts.append(text)
        sources.append(source)
        if len(texts) == per_shard or written + len(texts) == docs:
            ids = [f"doc-{written + i:09d}" for i in range(len(texts))]
            table = pa.table({"id": ids, "text": texts, "source": sources})
            pq.write_table(table, root / f"part-{written // per_shard:05d}.parquet", row_group_size=8192)
            written += len(texts)
            texts, sources = [], []
        if written == docs:
            done.touch()
            return root
    raise RuntimeError(f"this machine has text for only {written:,} chunk documents, not {docs:,}")
