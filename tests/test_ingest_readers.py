"""Ingest readers and screening, without Ray: every bad-input case and metadata handling."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from corpusmill.curation.errors import CorpusmillError
from corpusmill.curation.ingest.discover import InputError, plan_inputs, split_source
from corpusmill.curation.ingest.readers import CandidateBuffer, ReadOptions, parse_json_record, read_files, read_jsonl, read_parquet
from corpusmill.curation.ingest.screen import LOCATION, ScreenRules, screen_documents

OPTIONS = ReadOptions()


def parse(line: bytes, options: ReadOptions = OPTIONS) -> CandidateBuffer:
    buffer = CandidateBuffer("src")
    parse_json_record(line, "f.jsonl:1", "src:f.jsonl:1", buffer, options)
    return buffer


def reason_of(line: bytes, options: ReadOptions = OPTIONS) -> str | None:
    buffer = parse(line, options)
    return buffer.rejected[0][0] if buffer.rejected else None


def test_each_bad_json_line_gets_its_reason() -> None:
    assert reason_of(b'{"text": "ok"') == "malformed_json"
    assert reason_of(b"[1, 2]") == "malformed_json"
    assert reason_of(b'{"text": "caf\xe9"}') == "invalid_utf8"
    assert reason_of(b'{"text": "\\ud800 lone surrogate"}') == "invalid_utf8"
    assert reason_of(b'{"body": "x"}') == "missing_text"
    assert reason_of(b'{"text": null}') == "missing_text"
    assert reason_of(b'{"text": ["a"]}') == "non_string_text"
    assert reason_of(b'{"text": "x", "id": 1.5}') == "invalid_id"
    assert reason_of(b'{"text": "' + b"a" * 200 + b'"}', ReadOptions(max_doc_bytes=100)) == "too_large"
    assert reason_of(b'{"text": "fine"}') is None
    assert len(parse(b"   ")) == 0  # a blank line is not a record


def test_ids_fields_and_metadata() -> None:
    buffer = CandidateBuffer("web")
    parse_json_record(b'{"text": "a", "id": 7, "lang": "en", "source": "cc"}', "f:1", "web:f:1", buffer, OPTIONS)
    parse_json_record(b'{"body": "b", "lang": 3, "tags": ["x"]}', "f:2", "web:f:2", buffer, ReadOptions(text_field="body"))
    candidates, rejects = buffer.take()
    assert rejects is None
    assert candidates["id"].to_pylist() == ["7", "web:f:2"]
    assert candidates["orig_source"].to_pylist() == ["cc", None]
    assert candidates["lang"].to_pylist() == ["en", "3"]  # mixed types become text
    assert candidates["tags"].to_pylist() == [None, '["x"]']


def test_compressed_jsonl_and_truncated_gzip(tmp_path: Path) -> None:
    lines = "".join(json.dumps({"text": f"doc {i}"}) + "\n" for i in range(100)).encode()
    (tmp_path / "a.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines))
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(lines)[:-30])
    chunks = list(read_jsonl(tmp_path / "a.jsonl.zst", "a.jsonl.zst", "a", OPTIONS, []))
    assert sum(c.num_rows for c, _ in chunks if c is not None) == 100
    chunks = list(read_jsonl(tmp_path / "b.jsonl.gz", "b.jsonl.gz", "b", OPTIONS, []))
    rejects = [r for _, r in chunks if r is not None]
    assert [r["reason"][0].as_py() for r in rejects] == ["unreadable_input"]
    assert sum(c.num_rows for c, _ in chunks if c is not None) > 0


def test_file_tree_reader(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("\ufeffprint('hi')\r\n")
    (tmp_path / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (tmp_path / "old.txt").write_bytes(b"na\xefve")
    (tmp_path / "big.txt").write_text("x" * 500)
    rels = ["big.txt", "img.png", "old.txt", "src/a.py"]
    [(candidates, rejects)] = list(read_files(tmp_path, rels, "code", ReadOptions(max_doc_bytes=400), []))
    assert candidates.to_pydict() | {} == {
        "id": ["code:src/a.py"],
        "text": ["print('hi')\r\n"],  # BOM dropped, CRLF kept
        "source": ["code"],
        LOCATION: ["src/a.py"],
        "path": ["src/a.py"],
    }
    assert dict(zip(rejects["location"].to_pylist(), rejects["reason"].to_pylist())) == {
        "big.txt": "too_large",
        "img.png": "binary",
        "old.txt": "invalid_utf8",
    }
    assert rejects["raw_bytes"].to_pylist()[0] == 500


def test_parquet_reader_keeps_typed_metadata(tmp_path: Path) -> None:
    table = pa.table(
        {
            "content": pa.array([b"hello", b"\xff\xfe", None, b"world"], pa.binary()),
            "score": [0.5, 0.1, 0.2, 0.9],
            "id": [None, "b", "c", "d"],
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    options = ReadOptions(text_field="content")
    [(candidates, rejects)] = list(read_parquet(tmp_path / "t.parquet", "t.parquet", "pq", options, []))
    assert candidates["id"].to_pylist() == ["pq:t.parquet:0", "d"]
    assert candidates["text"].to_pylist() == ["hello", "world"]
    assert candidates.schema.field("score").type == pa.float64()
    assert rejects["reason"].to_pylist() == ["invalid_utf8", "missing_text"]
    assert rejects["location"].to_pylist() == ["t.parquet:1", "t.parquet:2"]


def test_screening_rules() -> None:
    candidates = pa.table(
        {
            "id": list("abcde"),
            "text": ["plain text\n\ttabbed", "bell\x07" * 10, "\x00", " \t\n ", "y" * 101],
            "source": ["s"] * 5,
            LOCATION: list("12345"),
        }
    )
    documents, rejects = screen_documents(candidates, "ingest", ScreenRules(max_doc_bytes=100))
    assert documents["id"].to_pylist() == ["a"] and documents[LOCATION].to_pylist() == ["1"]
    assert rejects["reason"].to_pylist() == ["binary", "binary", "empty_text", "too_large"]


def test_planning(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.jsonl").write_text("{}\n")
    (tmp_path / "data" / "y.parquet").write_bytes(b"")
    (tmp_path / "tree" / ".git").mkdir(parents=True)
    (tmp_path / "tree" / ".git" / "HEAD").write_text("ref")
    for i in range(5):
        (tmp_path / "tree" / f"f{i}.md").write_text("text")
    units = plan_inputs([str(tmp_path / "data"), f"{tmp_path / 'tree'}=docs"], unit_files=2).units
    assert [(u["kind"], u.get("rel"), u["source"]) for u in units[:2]] == [("jsonl", "x.jsonl", "data"), ("parquet", "y.parquet", "data")]
    assert [u["files"] for u in units[2:]] == [["f0.md", "f1.md"], ["f2.md", "f3.md"], ["f4.md"]]
    assert [u["unit_id"] for u in units] == [f"u{i:05d}" for i in range(5)]
    assert split_source(str(tmp_path / "data")) == (tmp_path / "data", None)
    globbed = plan_inputs([f"{tmp_path}/data/*.jsonl=web"]).units
    assert [(u["rel"], u["source"]) for u in globbed] == [("x.jsonl", "web")]
    try:
        plan_inputs([str(tmp_path / "nope.txt")])
    except InputError as error:
        assert "no such file" in str(error)
        assert isinstance(error, CorpusmillError)  # the CLI prints it as one line
    else:
        raise AssertionError("a missing input must be refused")
