"""Property-based tests of ingest (issue 15): whatever the input files hold, ingest never crashes,
and every record is accounted for: in = out + removed + rejected, in documents and in bytes.

Hypothesis writes the files: JSON records with text of any Unicode (NUL, lone surrogates as
JSON escapes), metadata nested up to 300 levels, fields whose type changes from file to file,
huge lines, many tiny records, lines of random bytes, and gzip / zstd streams cut anywhere.
Examples are few and the deadline is off so the suite stays CI-cheap.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpusmill.curation.atomic import read_json
from corpusmill.curation.dataset import Dataset
from corpusmill.curation.executor import SerialExecutor
from corpusmill.curation.ingest.stage import IngestOptions, ingest

CHEAP = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)

texts = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), texts)


def nested(depth: int) -> dict:
    value: object = "leaf"
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return {"deep": value}


@st.composite
def json_line(draw: st.DrawFn) -> bytes:
    """One JSONL line: mostly records with a text, sometimes something a reader must reject."""
    kind = draw(st.sampled_from(["record", "record", "record", "nested", "huge", "not_a_record", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=60)).replace(b"\n", b" ")
    if kind == "not_a_record":
        return json.dumps(draw(scalars)).encode()
    record: dict[str, object] = {"text": draw(st.one_of(texts, scalars))}
    if draw(st.booleans()):
        record["id"] = draw(st.one_of(st.text(max_size=4), st.integers(0, 5)))
    if draw(st.booleans()):
        record["score"] = draw(scalars)  # its type differs between records and files
    if kind == "nested":
        record["meta"] = nested(draw(st.integers(1, 300)))
    if kind == "huge":
        record["text"] = draw(st.sampled_from("ab\x00é\u2028")) * draw(st.integers(100_000, 1_500_000))
    return json.dumps(record, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


@st.composite
def input_file(draw: st.DrawFn) -> tuple[str, bytes]:
    lines = draw(st.lists(json_line(), max_size=25))
    if draw(st.integers(0, 9)) == 0:
        lines += [b'{"text":"t"}'] * 3000  # many tiny records
    data = b"\n".join(lines) + draw(st.sampled_from([b"", b"\n", b"\r\n"]))
    codec = draw(st.sampled_from(["", "", ".gz", ".zst"]))
    if codec == ".gz":
        data = gzip.compress(data)
    elif codec == ".zst":
        data = zstandard.ZstdCompressor().compress(data)
    if codec and draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]  # a stream cut anywhere
    return codec, data


def check_accounting(out: Path) -> dict:
    stats = read_json(out / "stats.json")
    for unit in ("docs", "bytes"):
        accounted = stats["out"][unit] + sum(
            counts[unit] for part in ("removed", "rejected") for counts in stats[part].values()
        )
        assert stats["in"][unit] == accounted, (unit, stats)
    return stats


@CHEAP
@given(files=st.lists(input_file(), min_size=1, max_size=4))
def test_any_jsonl_files_are_ingested_without_a_crash_or_a_loss(tmp_path_factory, files) -> None:
    root = tmp_path_factory.mktemp("inputs")
    for number, (codec, data) in enumerate(files):
        (root / f"part{number}.jsonl{codec}").write_bytes(data)
    out = root.parent / f"{root.name}-out"
    ingest(IngestOptions(inputs=(str(root),), out=str(out)), executor=SerialExecutor())
    stats = check_accounting(out)
    table = Dataset.open(out).read_table()
    assert table.num_rows == stats["out"]["docs"]
    assert len(set(table["id"].to_pylist())) == table.num_rows, "ids are unique"
    assert pa.types.is_string(table.schema.field("text").type) or pa.types.is_large_string(table.schema.field("text").type)


@CHEAP
@given(names=st.lists(st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=12),
                      min_size=1, max_size=6, unique=True),
       contents=st.lists(st.binary(max_size=300), min_size=6, max_size=6))
def test_any_tree_of_files_is_ingested_without_a_crash_or_a_loss(tmp_path_factory, names, contents) -> None:
    root = tmp_path_factory.mktemp("tree")
    for name, data in zip(names, contents):
        path = root / "docs" / f"{name}.txt"
        if name in (".", ".."):
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "docs").mkdir(exist_ok=True)
    out = root / "out"
    ingest(IngestOptions(inputs=(str(root / "docs"),), out=str(out)), executor=SerialExecutor())
    stats = check_accounting(out)
    assert stats["in"]["docs"] == len(list((root / "docs").iterdir()))
