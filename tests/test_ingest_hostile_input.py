"""Ingest under hostile input (issue 15): nothing silently lost, nothing aborts, ids unique.

Each test reproduces one defect of the reliability probe with its numbers where the issue
gives them; all run in-process (SerialExecutor), on real text from this machine.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import zstandard
from corpusmill.curation.dataset import Dataset, Manifest
from corpusmill.curation.executor import SerialExecutor
from corpusmill.curation.ingest import discover
from corpusmill.curation.ingest import ids as ingest_ids
from corpusmill.curation.ingest.discover import InputError, plan_inputs
from corpusmill.curation.ingest.readers import ReadOptions, read_jsonl
from corpusmill.curation.ingest.stage import IngestOptions, InputChangedError, ingest
from corpusmill.curation.progress import RecordingProgress
from corpusmill.curation.stage import StageConfigMismatch
from corpusmill.curation.stats import StageStats
from corpusmill.pipelines.cli import main


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def ingest_to(inputs: list[str], out: Path, progress: RecordingProgress | None = None, **options: Any) -> Manifest:
    executor = SerialExecutor(progress)
    return ingest(IngestOptions(inputs=tuple(inputs), out=str(out), **options), executor=executor)


def stats_of(out: Path) -> StageStats:
    stats = StageStats.from_dict(json.loads((out / "stats.json").read_text()))
    stats.check()
    return stats


def rejects_of(out: Path) -> list[dict[str, Any]]:
    return Dataset.open(out / "rejects").read_table().to_pylist()


def documents_of(out: Path) -> list[dict[str, Any]]:
    return Dataset.open(out).read_table().to_pylist()


def read_all(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """(texts kept, rejects) of one JSONL file, straight from the reader."""
    texts, rejects = [], []
    for candidates, rejected in read_jsonl(path, path.name, "s", ReadOptions(), []):
        texts += [] if candidates is None else candidates["text"].to_pylist()
        rejects += [] if rejected is None else rejected.to_pylist()
    return texts, rejects


# --- 3. compressed readers account for every byte they could not decode --------------------------------


def numbered_records(count: int, stdlib_texts: list[str]) -> list[dict[str, Any]]:
    words = " ".join(stdlib_texts[0].split()[:12])
    return [{"text": f"{i} {words}"} for i in range(count)]


def test_zstd_cut_mid_frame_rejects_the_rest_with_byte_counts(tmp_path: Path, stdlib_texts: list[str]) -> None:
    records = numbered_records(20_000, stdlib_texts)
    compressed = zstandard.ZstdCompressor().compress(jsonl(records))
    path = tmp_path / "cut.jsonl.zst"
    path.write_bytes(compressed[: len(compressed) * 2 // 3])
    texts, rejects = read_all(path)
    assert 0 < len(texts) < 20_000
    assert texts == [r["text"] for r in records[: len(texts)]]  # a clean prefix, nothing skipped
    [reject] = rejects
    assert reject["reason"] == "unreadable_input"
    assert "the file ends inside a compressed frame" in reject["detail"] and "were not decoded" in reject["detail"]
    cut_line = reject["raw"]
    assert json.dumps(records[len(texts)]).encode().startswith(cut_line)  # the record it cut, as far as it got
    undecoded = int(reject["detail"].split(" bytes) were not decoded")[0].rsplit("(", 1)[1].replace(",", ""))
    assert undecoded > 0 and reject["raw_bytes"] == len(cut_line) + undecoded


@pytest.mark.parametrize("suffix", [".jsonl.zst", ".jsonl.gz"])
def test_valid_frame_followed_by_garbage_keeps_every_record_and_rejects_the_garbage(
    tmp_path: Path, suffix: str, stdlib_texts: list[str]
) -> None:
    records = numbered_records(267, stdlib_texts)
    compress = zstandard.ZstdCompressor().compress if suffix.endswith(".zst") else gzip.compress
    garbage = bytes(range(1, 256)) * 20
    path = tmp_path / f"data{suffix}"
    path.write_bytes(compress(jsonl(records)) + garbage)
    texts, rejects = read_all(path)
    assert texts == [r["text"] for r in records]
    [reject] = rejects
    assert reject["reason"] == "unreadable_input"
    assert f"({len(garbage):,} bytes) were not decoded" in reject["detail"]
    assert reject["raw_bytes"] == len(garbage)


def test_gzip_members_and_nul_padding_are_whole_data(tmp_path: Path, stdlib_texts: list[str]) -> None:
    records = numbered_records(30, stdlib_texts)
    path = tmp_path / "members.jsonl.gz"
    path.write_bytes(gzip.compress(jsonl(records[:10])) + gzip.compress(jsonl(records[10:])) + b"\0" * 512)
    texts, rejects = read_all(path)
    assert texts == [r["text"] for r in records] and rejects == []


# --- 4. deep nesting is a reject, never an abort ---------------------------------------------------------


def nested_line(text: str, depth: int) -> bytes:
    """A record whose ``meta`` is ``depth`` objects deep (written directly: json.dumps would recurse)."""
    return (
        b'{"text": ' + json.dumps(text).encode() + b', "meta": ' + b'{"k": ' * depth + b'"leaf"' + b"}" * depth + b"}\n"
    )


def test_deeply_nested_metadata_is_rejected_as_too_deep(tmp_path: Path, stdlib_texts: list[str]) -> None:
    texts = stdlib_texts[:4]
    lines = [
        nested_line(texts[0], 10),
        nested_line(texts[1], 255),
        nested_line(texts[2], 1023),
        nested_line(texts[3], 2000),
    ]
    (tmp_path / "deep.jsonl").write_bytes(b"".join(lines))
    ingest_to([str(tmp_path / "deep.jsonl")], tmp_path / "out")
    [kept] = documents_of(tmp_path / "out")
    assert kept["text"] == texts[0] and kept["meta"] == '{"k":' * 10 + '"leaf"' + "}" * 10
    assert [(r["reason"], r["location"]) for r in rejects_of(tmp_path / "out")] == [
        ("too_deep", "deep.jsonl:2"),
        ("too_deep", "deep.jsonl:3"),
        ("too_deep", "deep.jsonl:4"),
    ]
    assert stats_of(tmp_path / "out").rejected["too_deep"].docs == 3


# --- 5. a bad Parquet value costs its row, not the file -------------------------------------------------


def test_parquet_struct_and_invalid_utf8_ids_are_per_row_rejects(tmp_path: Path, stdlib_texts: list[str]) -> None:
    texts = stdlib_texts[:4]
    pq.write_table(
        pa.table({"text": texts, "id": pa.array([{"a": 1}, None, {"a": 2}, None], pa.struct([("a", pa.int64())]))}),
        tmp_path / "struct.parquet",
    )
    pq.write_table(
        pa.table({"text": texts, "id": pa.array([b"ok-0", b"\xff\xfe", b"", None], pa.binary())}),
        tmp_path / "binary.parquet",
    )
    ingest_to([str(tmp_path / "struct.parquet"), str(tmp_path / "binary.parquet")], tmp_path / "out")
    kept = {d["id"]: d["text"] for d in documents_of(tmp_path / "out")}
    assert kept == {
        "struct:struct.parquet:1": texts[1],
        "struct:struct.parquet:3": texts[3],
        "ok-0": texts[0],
        "binary:binary.parquet:3": texts[3],
    }
    rejects = rejects_of(tmp_path / "out")
    assert sorted((r["reason"], r["location"]) for r in rejects) == [
        ("invalid_id", "binary.parquet:1"),
        ("invalid_id", "binary.parquet:2"),
        ("invalid_id", "struct.parquet:0"),
        ("invalid_id", "struct.parquet:2"),
    ]
    assert all("struct<a: int64>" in r["detail"] for r in rejects if r["location"].startswith("struct"))
    assert stats_of(tmp_path / "out").input.docs == 8


def test_parquet_with_a_repeated_text_column_is_named_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    table = pa.Table.from_arrays([pa.array(["a"]), pa.array(["b"])], names=["text", "text"])
    pq.write_table(table, tmp_path / "twice.parquet")
    assert main(["ingest", str(tmp_path / "twice.parquet"), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert "twice.parquet" in error and "['text'] appear more than once" in error and "\n" not in error
    assert not (tmp_path / "out").exists()


def test_dictionary_encoded_string_text_is_text(tmp_path: Path, stdlib_texts: list[str]) -> None:
    texts = stdlib_texts[:3]
    text = pa.array([texts[0], texts[1], texts[0], texts[2]]).dictionary_encode()
    pq.write_table(pa.table({"text": text, "id": ["a", "b", "c", "d"]}), tmp_path / "dict.parquet")
    ingest_to([str(tmp_path / "dict.parquet")], tmp_path / "out")
    assert [d["text"] for d in documents_of(tmp_path / "out")] == [texts[0], texts[1], texts[0], texts[2]]


# --- 6. ids are unique across the whole ingest -----------------------------------------------------------


def test_duplicate_ids_are_rejected_after_the_first_and_123_equals_quoted_123(
    tmp_path: Path, stdlib_texts: list[str]
) -> None:
    texts = stdlib_texts[:5]
    (tmp_path / "a.jsonl").write_bytes(jsonl([{"text": texts[0], "id": "dup"}, {"text": texts[1], "id": 123}]))
    (tmp_path / "b.jsonl").write_bytes(
        jsonl([{"text": texts[2], "id": "dup"}, {"text": texts[3], "id": "123"}, {"text": texts[4]}])
    )
    ingest_to([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")], tmp_path / "out")
    kept = {d["id"]: d["text"] for d in documents_of(tmp_path / "out")}
    assert kept == {"dup": texts[0], "123": texts[1], "b:b.jsonl:3": texts[4]}
    rejects = rejects_of(tmp_path / "out")
    assert [(r["reason"], r["id"], r["location"], r["raw"].decode()) for r in rejects] == [
        ("duplicate_id", "dup", "b.jsonl:1 (b)", texts[2]),
        ("duplicate_id", "123", "b.jsonl:2 (b)", texts[3]),
    ]
    assert rejects[0]["detail"] == "id already used by the document at a.jsonl:1 (a)"
    stats = stats_of(tmp_path / "out")
    assert stats.rejected["duplicate_id"].docs == 2
    assert stats.rejected["duplicate_id"].bytes == len(texts[2].encode()) + len(texts[3].encode())


def test_the_surviving_duplicate_never_depends_on_partitions_or_units(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stdlib_texts: list[str]
) -> None:
    texts = stdlib_texts[:40]
    tree = tmp_path / "tree"
    tree.mkdir()
    for i, text in enumerate(texts):
        (tree / f"f{i:02d}.txt").write_text(text)
    records = [{"text": text, "id": f"tree:f{(i * 7) % 40:02d}.txt"} for i, text in enumerate(texts)]
    (tmp_path / "later.jsonl").write_bytes(jsonl(records))
    inputs = [f"{tree}=tree", str(tmp_path / "later.jsonl")]
    ingest_to(inputs, tmp_path / "one")
    monkeypatch.setattr(ingest_ids, "BYTES_PER_PARTITION", 100_000)  # several id partitions
    monkeypatch.setattr(discover, "UNIT_FILES", 7)  # the tree read in six units, not one
    ingest_to(inputs, tmp_path / "many")
    assert json.loads((tmp_path / "many" / "_progress" / "pinned-id_partitions.json").read_text())["value"] > 1
    assert len(list((tmp_path / "many" / "_progress" / "read").glob("*.json"))) > 2
    for out in ("one", "many"):
        kept = {d["id"]: d["text"] for d in documents_of(tmp_path / out)}
        assert kept == {f"tree:f{i:02d}.txt": text for i, text in enumerate(texts)}  # the tree came first
        assert sorted(r["location"] for r in rejects_of(tmp_path / out)) == sorted(
            f"later.jsonl:{i + 1} (later)" for i in range(40)
        )


def test_same_named_files_in_different_folders_get_distinct_generated_ids(
    tmp_path: Path, stdlib_texts: list[str]
) -> None:
    texts = stdlib_texts[:4]
    for folder, pair in (("d1", texts[:2]), ("d2", texts[2:])):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "web.jsonl").write_bytes(jsonl([{"text": t} for t in pair]))
    ingest_to([str(tmp_path / "d1" / "web.jsonl"), str(tmp_path / "d2" / "web.jsonl")], tmp_path / "named")
    ingest_to([f"{tmp_path}/*/web.jsonl"], tmp_path / "globbed")
    for out in ("named", "globbed"):
        kept = {d["id"]: d["text"] for d in documents_of(tmp_path / out)}
        assert kept == {
            "web:d1/web.jsonl:1": texts[0],
            "web:d1/web.jsonl:2": texts[1],
            "web:d2/web.jsonl:1": texts[2],
            "web:d2/web.jsonl:2": texts[3],
        }


def test_two_trees_with_one_source_get_distinct_ids(tmp_path: Path, stdlib_texts: list[str]) -> None:
    texts = stdlib_texts[:2]
    for folder, text in zip(("a", "b"), texts):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "README").write_text(text)
    ingest_to([f"{tmp_path / 'a'}=docs", f"{tmp_path / 'b'}=docs"], tmp_path / "out")
    kept = {d["id"]: (d["text"], d["path"]) for d in documents_of(tmp_path / "out")}
    assert kept == {"docs:a/README": (texts[0], "README"), "docs:b/README": (texts[1], "README")}


# --- 9 and 6. symlinks: not followed by default, loops end, nothing read twice -------------------------


def looped_tree(root: Path, stdlib_texts: list[str]) -> Path:
    """data/x/web.jsonl plus two links back up the tree: a glob that follows them never ends."""
    data = root / "data"
    (data / "x").mkdir(parents=True)
    (data / "x" / "web.jsonl").write_bytes(jsonl([{"text": stdlib_texts[0]}]))
    os.symlink("..", data / "x" / "up")
    os.symlink("../x", data / "x" / "again")
    return data


@pytest.mark.parametrize("follow", [False, True])
def test_a_doublestar_glob_over_symlink_loops_reads_each_file_once(
    tmp_path: Path, follow: bool, stdlib_texts: list[str]
) -> None:
    data = looped_tree(tmp_path, stdlib_texts)
    plan = plan_inputs([f"{data}/**/*.jsonl"], follow_symlinks=follow)
    assert [(u["rel"], u["path"]) for u in plan.units] == [("x/web.jsonl", str((data / "x" / "web.jsonl").resolve()))]
    if not follow:
        assert any("symlink" in note and "--follow-symlinks" in note for note in plan.notes)
    progress = RecordingProgress()
    ingest_to([f"{data}/**/*.jsonl"], tmp_path / f"out-{follow}", progress, follow_symlinks=follow)
    assert len(documents_of(tmp_path / f"out-{follow}")) == 1


def test_a_tree_skips_symlinked_folders_unless_asked(tmp_path: Path, stdlib_texts: list[str]) -> None:
    texts = stdlib_texts[:2]
    (tmp_path / "tree" / "real").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "tree" / "real" / "a.txt").write_text(texts[0])
    (tmp_path / "elsewhere" / "b.txt").write_text(texts[1])
    os.symlink(tmp_path / "elsewhere", tmp_path / "tree" / "linked")
    os.symlink(tmp_path / "tree", tmp_path / "tree" / "real" / "loop")
    default = plan_inputs([str(tmp_path / "tree")])
    assert [u["files"] for u in default.units] == [["real/a.txt"]]
    followed = plan_inputs([str(tmp_path / "tree")], follow_symlinks=True)
    assert [u["files"] for u in followed.units] == [["linked/b.txt", "real/a.txt"]]


def test_a_file_given_twice_is_read_once(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(jsonl([{"text": "hello there"}]))
    plan = plan_inputs([str(tmp_path / "a.jsonl"), str(tmp_path / "a.jsonl")])
    assert len(plan.units) == 1 and "more than once" in plan.notes[0]


# --- 8. a changed input of the same size is noticed ------------------------------------------------------


def test_a_changed_input_of_the_same_size_is_named_on_rerun(tmp_path: Path, stdlib_texts: list[str]) -> None:
    texts = stdlib_texts[:2]
    path = tmp_path / "web.jsonl"
    path.write_bytes(jsonl([{"text": texts[0]}, {"text": texts[1]}]))
    ingest_to([str(path)], tmp_path / "out")
    os.utime(path, ns=(1, 1))  # touched, same content: still complete
    progress = RecordingProgress()
    ingest_to([str(path)], tmp_path / "out", progress)
    assert any("already complete" in note for note in progress.notes)
    changed = bytearray(path.read_bytes())
    changed[20] = ord("Z") if changed[20] != ord("Z") else ord("Y")
    path.write_bytes(bytes(changed))
    with pytest.raises(InputChangedError, match=f"{path} changed since it was ingested"):
        ingest_to([str(path)], tmp_path / "out")
    path.write_bytes(bytes(changed) + b"\n")  # resized: named too, rather than "other settings"
    with pytest.raises(InputChangedError, match=f"{path} changed since it was ingested"):
        ingest_to([str(path)], tmp_path / "out")
    manifest = ingest_to([str(path)], tmp_path / "fresh")
    assert manifest.inputs == [
        {"path": str(path), "size": path.stat().st_size, "checksum": manifest.inputs[0]["checksum"]}
    ]
    assert manifest.inputs[0]["checksum"].startswith("xxh3_128:")


def test_a_changed_dataset_input_is_named_by_the_next_stage(tmp_path: Path, stdlib_texts: list[str]) -> None:
    from corpusmill.curation.dedup.exact_stage import DedupExactOptions, dedup_exact

    texts = stdlib_texts[:3]
    path = tmp_path / "web.jsonl"
    path.write_bytes(jsonl([{"text": t, "id": str(i)} for i, t in enumerate(texts)]))
    ingest_to([str(path)], tmp_path / "ingested")
    options = DedupExactOptions(input=str(tmp_path / "ingested"), out=str(tmp_path / "dedup"))
    dedup_exact(options, executor=SerialExecutor())
    path.write_bytes(jsonl([{"text": t, "id": str(2 - i)} for i, t in enumerate(texts)]))  # same size, new ids
    ingest(
        IngestOptions(inputs=(str(path),), out=str(tmp_path / "ingested")), executor=SerialExecutor(), overwrite=True
    )
    with pytest.raises(StageConfigMismatch, match="the input's content"):
        dedup_exact(options, executor=SerialExecutor())


# --- 11. a UTF-8 byte order mark is dropped ---------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_a_byte_order_mark_at_the_start_of_jsonl_is_dropped(
    tmp_path: Path, suffix: str, stdlib_texts: list[str]
) -> None:
    texts = stdlib_texts[:2]
    data = b"\xef\xbb\xbf" + jsonl([{"text": texts[0]}, {"text": texts[1]}])
    path = tmp_path / f"bom{suffix}"
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    kept, rejects = read_all(path)
    assert kept == texts and rejects == []


# --- 13. schema drift, reserved names, markers --------------------------------------------------------------


def test_schema_drift_across_files_is_unified_and_recorded(tmp_path: Path, stdlib_texts: list[str]) -> None:
    texts = stdlib_texts[:4]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.jsonl").write_bytes(
        jsonl([{"text": texts[0], "score": 3, "n": 1}, {"text": texts[1], "score": 5, "n": 2}])
    )
    (tmp_path / "data" / "b.jsonl").write_bytes(
        jsonl([{"text": texts[2], "score": "high", "n": 2.5}, {"text": texts[3], "n": None}])
    )
    manifest = ingest_to([str(tmp_path / "data")], tmp_path / "out")
    assert manifest.schema_drift == {
        "score": "int64 | string -> string (non-string values JSON-encoded)",
        "n": "double | int64 -> double (widened to float64)",
    }
    assert manifest.columns["score"] == "string" and manifest.columns["n"] == "double"
    whole = pads.dataset(str(tmp_path / "out" / "shards")).to_table()  # one schema: readable as one table
    assert sorted(zip(whole["text"].to_pylist(), whole["score"].to_pylist(), whole["n"].to_pylist())) == sorted(
        [(texts[0], "3", 1.0), (texts[1], "5", 2.0), (texts[2], "high", 2.5), (texts[3], None, None)]
    )


def test_source_and_orig_source_of_a_record_both_survive(tmp_path: Path, stdlib_texts: list[str]) -> None:
    texts = stdlib_texts[:1]
    (tmp_path / "web.jsonl").write_bytes(jsonl([{"text": texts[0], "source": "cc-2024", "orig_source": "crawler-7"}]))
    ingest_to([str(tmp_path / "web.jsonl")], tmp_path / "out")
    [document] = documents_of(tmp_path / "out")
    assert (document["source"], document["orig_source"], document["orig_orig_source"]) == (
        "web",
        "crawler-7",
        "cc-2024",
    )


def test_a_jsonl_folder_with_job_markers_is_a_data_folder(tmp_path: Path, stdlib_texts: list[str]) -> None:
    texts = stdlib_texts[:2]
    data = tmp_path / "export"
    data.mkdir()
    (data / "part-00000.jsonl").write_bytes(jsonl([{"text": texts[0]}]))
    (data / "part-00001.jsonl").write_bytes(jsonl([{"text": texts[1]}]))
    (data / "_SUCCESS").write_text("")
    (data / ".part-00000.jsonl.crc").write_bytes(b"crc")
    plan = plan_inputs([str(data)])
    assert [(u["kind"], u["rel"]) for u in plan.units] == [("jsonl", "part-00000.jsonl"), ("jsonl", "part-00001.jsonl")]
    assert any("marker" in note for note in plan.notes)
    ingest_to([str(data)], tmp_path / "out")
    assert sorted(d["text"] for d in documents_of(tmp_path / "out")) == sorted(texts)


def test_an_unmatched_pattern_is_still_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="matches no file"):
        plan_inputs([f"{tmp_path}/**/*.jsonl"])
