"""Shards are checked against their manifest before they are read (issue 15, defect 7).

A shard rewritten with fewer rows, cut short, or with one byte flipped stops the reading
stage with one line naming the shard, instead of being consumed as if it were whole.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray.cloudpickle
from corpusmill.curation.dataset import CorruptShardError, Dataset
from corpusmill.curation.dedup.exact_stage import DedupExactOptions, dedup_exact
from corpusmill.curation.executor import SerialExecutor
from corpusmill.curation.ingest.stage import IngestOptions, ingest
from corpusmill.pipelines.cli import main

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture
def ingested(tmp_path: Path, stdlib_texts: list[str]) -> Path:
    """A one-shard dataset of 240 documents (paragraphs of stdlib modules)."""
    paragraphs = [p for text in stdlib_texts for p in text.split("\n\n") if len(p) > 200][:240]
    assert len(paragraphs) == 240
    raw = tmp_path / "web.jsonl"
    lines = [json.dumps({"text": p, "id": f"d{i:03d}"}) for i, p in enumerate(paragraphs)]
    raw.write_text("\n".join([*lines, '{"text": "an unterminated record']) + "\n")
    ingest(IngestOptions(inputs=(str(raw),), out=str(tmp_path / "in")), executor=SerialExecutor())
    return tmp_path / "in"


def only_shard(dataset_dir: Path) -> Path:
    [shard] = Dataset.open(dataset_dir).shards
    return dataset_dir / shard.name


def dedup(input_dir: Path, out: Path) -> None:
    dedup_exact(DedupExactOptions(input=str(input_dir), out=str(out)), executor=SerialExecutor())


def test_a_shard_rewritten_with_fewer_rows_is_named(
    ingested: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    shard = only_shard(ingested)
    pq.write_table(pq.read_table(shard).slice(50), shard)
    with pytest.raises(CorruptShardError, match=f"{shard}: .* bytes, but its manifest records"):
        dedup(ingested, tmp_path / "dedup")
    assert main(["dedup", "exact", str(ingested), "--out", str(tmp_path / "dedup")]) == 2
    error = capsys.readouterr().err.strip()
    assert str(shard) in error and "\n" not in error and "re-run that stage" in error


def test_a_truncated_shard_is_named(ingested: Path, tmp_path: Path) -> None:
    shard = only_shard(ingested)
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(CorruptShardError, match=str(shard)):
        dedup(ingested, tmp_path / "dedup")


def test_a_bit_flip_of_the_same_size_is_named(ingested: Path, tmp_path: Path) -> None:
    shard = only_shard(ingested)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    with pytest.raises(CorruptShardError, match=f"{shard}: its content differs from the checksum in its manifest"):
        dedup(ingested, tmp_path / "dedup")
    assert not (tmp_path / "dedup" / "manifest.json").exists()


@pytest.mark.usefixtures("ray_session")
def test_a_corrupt_shard_found_in_a_ray_worker_is_one_line(
    ingested: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    shard = only_shard(ingested)
    data = bytearray(shard.read_bytes())
    data[len(data) // 3] ^= 0x40
    shard.write_bytes(bytes(data))
    assert main(["dedup", "exact", str(ingested), "--out", str(tmp_path / "dedup")]) == 2
    error = capsys.readouterr().err.strip()
    assert str(shard) in error and "checksum" in error and "\n" not in error


def test_rows_are_checked_where_a_manifest_has_no_checksum(ingested: Path, tmp_path: Path) -> None:
    manifest = json.loads((ingested / "manifest.json").read_text())
    manifest["shards"][0]["checksum"] = None
    manifest["shards"][0]["rows"] += 1
    (ingested / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorruptShardError, match="240 rows, but its manifest records 241"):
        dedup(ingested, tmp_path / "dedup")


def test_a_damaged_file_of_a_bare_parquet_folder_is_named(tmp_path: Path, stdlib_texts: list[str]) -> None:
    folder = tmp_path / "foreign"
    folder.mkdir()
    for i in range(2):
        table = pa.table({"id": [f"{i}"], "text": [stdlib_texts[i]], "source": ["s"]})
        pq.write_table(table, folder / f"part-{i}.parquet")
    damaged = folder / "part-1.parquet"
    damaged.write_bytes(damaged.read_bytes()[:-20])
    with pytest.raises(CorruptShardError, match=f"{damaged}: not readable Parquet"):
        Dataset.open(folder)


def test_manifests_record_a_checksum_for_every_shard_and_reject(ingested: Path) -> None:
    for root in (ingested, ingested / "rejects"):
        shards = Dataset.open(root).shards
        assert shards and all(shard.checksum and shard.checksum.startswith("xxh3_128:") for shard in shards)
