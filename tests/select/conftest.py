"""A real dataset for `select`: Python stdlib modules with annotation columns computed in plain Python.

Handed out as fixtures (with ``--import-mode=importlib`` test modules cannot import conftest).
Each column kind the language reads is present, with nulls: integers, floats, strings,
booleans, a list<string>, and a column that one shard lacks altogether.
"""

from __future__ import annotations

import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

Row = dict[str, object]


def _stdlib_modules(limit: int) -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [p.read_text(encoding="utf-8") for p in sorted(stdlib.glob("*.py")) if 1000 < p.stat().st_size < 40_000]
    assert len(texts) >= limit, "expected more stdlib modules on this machine"
    return texts[:limit]


def _reasons(text: str) -> list[str]:
    lines = text.split("\n")
    reasons = []
    if max(len(line) for line in lines) > 100:
        reasons.append("long_line")
    if "TODO" in text or "XXX" in text:
        reasons.append("todo")
    if '"""' not in text:
        reasons.append("no_docstring")
    return reasons


def _first_import(lines: list[str]) -> str | None:
    """The module of the first `import x` line; null for modules that have none."""
    return next((line.split()[1].rstrip(",") for line in lines if line.startswith("import ")), None)


def annotated_rows(limit: int = 60) -> list[Row]:
    """One row per module; every annotation is a plain-Python fact about its text."""
    rows = []
    for i, text in enumerate(_stdlib_modules(limit)):
        lines = text.split("\n")
        defs = sum(1 for line in lines if line.lstrip().startswith("def "))
        rows.append(
            {
                "id": f"py-{i:03d}",
                "text": text,
                "source": ("lib", "tools", "lib")[i % 3],
                "lines": len(lines),
                "mean_line": len(text) / len(lines),
                "score": defs / len(lines) if defs else None,
                "first_import": _first_import(lines),
                "reasons": None if i % 11 == 0 else _reasons(text),
                "has_main": None if i % 5 == 0 else "__main__" in text,
            }
        )
    return rows


SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("lines", pa.int32()),
        ("mean_line", pa.float64()),
        ("score", pa.float32()),
        ("first_import", pa.dictionary(pa.int8(), pa.string())),
        ("reasons", pa.list_(pa.string())),
        ("has_main", pa.bool_()),
    ]
)
BLANK_ROWS = [{"id": "blank-0", "text": "   \n", "source": "lib"}, {"id": "blank-1", "text": "", "source": "tools"}]


@dataclass(frozen=True)
class Annotated:
    root: Path
    documents: list[Row]  # the valid documents as written: the third shard's lack `score`
    blank_ids: list[str]  # documents the document contract rejects


def write_shards(root: Path, rows: list[Row]) -> Annotated:
    """Three shards; the last has no `score` column (it reads as null there) and two blank documents."""
    root.mkdir(parents=True)
    third = len(rows) // 3
    documents: list[Row] = []
    for index, part in enumerate((rows[:third], rows[third : 2 * third], rows[2 * third :])):
        schema = SCHEMA
        if index == 2:
            schema = pa.schema([f for f in SCHEMA if f.name != "score"])
            part = [{k: v for k, v in row.items() if k != "score"} for row in part] + BLANK_ROWS
        path = root / f"part-{index}.parquet"
        pq.write_table(pa.Table.from_pylist(part, schema=schema), path)
        # As read back: float32 scores rounded, the dictionary column decoded.
        documents += [row for row in pq.read_table(path).to_pylist() if row["text"].strip()]
    return Annotated(root, documents, [row["id"] for row in BLANK_ROWS])


@pytest.fixture(scope="module")
def annotated(tmp_path_factory: pytest.TempPathFactory) -> Annotated:
    """Written once per test module; stages only read it."""
    return write_shards(tmp_path_factory.mktemp("select") / "annotated", annotated_rows())
