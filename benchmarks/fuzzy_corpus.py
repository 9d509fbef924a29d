"""Benchmark corpora for near-duplicate removal: real files cut into document-sized chunks.

Every document is 20 consecutive lines of a real file on this machine: Python
sources of every installed Python and its packages (the running environment's
included), C headers, and Debian's documentation. Several Pythons ship different releases of the same modules,
so the corpus holds natural near-duplicates at a realistic rate. Deterministic
for a given machine: files are read in sorted order.
"""

from __future__ import annotations

import glob
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from corpusmill.curation.dataset import SHARDS_DIR, Manifest, ShardInfo, text_bytes, write_manifest

LINES_PER_DOC = 20
MIN_DOC_BYTES = 200
PATTERNS = {
    "python": [
        "/root/.pyenv/versions/*/lib/python*/**/*.py",
        "/usr/lib/python3*/**/*.py",
        f"{sysconfig.get_paths()['purelib']}/**/*.py",
    ],
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
    (root / SHARDS_DIR).mkdir(exist_ok=True)
    per_shard = -(-docs // shards)
    texts: list[str] = []
    sources: list[str] = []
    written: list[ShardInfo] = []
    for source, text in _chunks():
        texts.append(text)
        sources.append(source)
        if len(texts) == per_shard or sum(s.rows for s in written) + len(texts) == docs:
            written.append(_write_shard(root, len(written), per_shard, texts, sources))
            texts, sources = [], []
        if sum(s.rows for s in written) == docs:
            write_manifest(root, Manifest("benchmark_corpus", {"docs": docs, "lines_per_doc": LINES_PER_DOC}, written))
            done.touch()
            return root
    raise RuntimeError(f"this machine has text for only {sum(s.rows for s in written):,} chunk documents, not {docs:,}")


def _write_shard(root: Path, index: int, per_shard: int, texts: list[str], sources: list[str]) -> ShardInfo:
    ids = [f"doc-{index * per_shard + i:09d}" for i in range(len(texts))]
    table = pa.table({"id": ids, "text": texts, "source": sources})
    name = f"{SHARDS_DIR}/part-{index:05d}.parquet"
    pq.write_table(table, root / name, row_group_size=8192)
    return ShardInfo(name, table.num_rows, (root / name).stat().st_size, text_bytes(table))
