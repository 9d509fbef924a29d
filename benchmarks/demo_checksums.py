"""Checksums of everything a demo run produced, to show a refactor changed no result.

    python -m benchmarks.demo_checksums DEMO_OUT > sums.txt

One line per output file: its path under DEMO_OUT and the sha256 of its bytes; Parquet
files also get the sha256 of their rows (every column, in order), so a file that only
differs in writer metadata still shows equal content. Files that record run-specific
facts (timings, absolute paths, creation times: manifests, stats, cards, progress
records) are left out; their numbers are compared by the tests instead.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pyarrow.parquet as pq

SKIPPED_NAMES = {"manifest.json", "tokenized.json", "stats.json", "card.json", "config.json"}
SKIPPED_DIRS = {"_progress", "_work", "raw"}


def _rows_digest(path: Path) -> str:
    table = pq.read_table(path)
    digest = hashlib.sha256()
    for name in table.column_names:
        digest.update(name.encode())
        digest.update(repr(table[name].to_pylist()).encode())
    return digest.hexdigest()


def checksums(root: Path) -> list[str]:
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root)
        if path.name in SKIPPED_NAMES or SKIPPED_DIRS & set(relative.parts):
            continue
        line = f"{relative}  {hashlib.sha256(path.read_bytes()).hexdigest()}"
        if path.suffix == ".parquet":
            line += f"  rows {_rows_digest(path)}"
        lines.append(line)
    return lines


if __name__ == "__main__":
    print("\n".join(checksums(Path(sys.argv[1]))))
