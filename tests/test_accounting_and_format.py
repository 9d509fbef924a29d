"""Pure tests of the dataset format and the accounting it carries."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpusmill.curation.dataset import Dataset, DatasetError, Manifest, ShardWriter, text_bytes
from corpusmill.curation.stats import AccountingError, StageStats


def test_stats_balance_and_merge() -> None:
    unit_a, unit_b = StageStats("s"), StageStats("s")
    unit_a.add_input(5, 500)
    unit_a.add_output(3, 300)
    unit_a.add_removed("dup", 1, 100)
    unit_a.add_rejected("binary", 1, 100)
    unit_b.add_input(2, 20)
    unit_b.add_output(2, 20)
    unit_a.merge(unit_b)
    unit_a.check()
    assert StageStats.from_dict(unit_a.to_dict()).to_dict() == unit_a.to_dict()
    unit_a.add_output(1, 1)
    with pytest.raises(AccountingError, match="in="):
        unit_a.check()


def test_shard_writer_rolls_over_by_size_and_renames_atomically(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, "shards", "u00007", max_shard_bytes=100)
    for i in range(5):
        writer.write(pa.table({"id": [f"d{i}"], "text": ["x" * 60], "source": ["s"]}))
        assert not list((tmp_path / "shards").glob("*.parquet")) or i > 0
    shards = writer.close()
    assert [s.rows for s in shards] == [2, 2, 1]
    assert [s.name for s in shards] == [f"shards/u00007-0000{i}.parquet" for i in range(3)]
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == [Path(s.name).name for s in shards]
    assert sum(s.text_bytes for s in shards) == 300


def test_shard_writer_starts_a_new_shard_when_metadata_changes(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, "shards", "u1")
    writer.write(pa.table({"id": ["a"], "text": ["t"], "source": ["s"], "rank": [1]}))
    writer.write(pa.table({"id": ["b"], "text": ["t"], "source": ["s"]}))  # missing column: filled with null
    writer.write(pa.table({"id": ["c"], "text": ["t"], "source": ["s"], "rank": ["high"]}))  # type conflict
    shards = writer.close()
    assert [s.rows for s in shards] == [2, 1]
    first = pq.read_table(tmp_path / shards[0].name)
    assert first["rank"].to_pylist() == [1, None]


def test_bare_parquet_directory_opens_as_dataset(tmp_path: Path) -> None:
    (tmp_path / "part").mkdir()
    table = pa.table({"id": ["1", "2"], "text": ["héllo", "wörld!"], "source": ["x", "x"]})
    pq.write_table(table, tmp_path / "part" / "a.parquet")
    dataset = Dataset.open(tmp_path)
    assert dataset.num_rows == 2 and dataset.manifest is None
    assert dataset.shards[0].text_bytes >= text_bytes(table) == len("héllo".encode()) + len("wörld!".encode())
    with pytest.raises(DatasetError, match="no such dataset"):
        Dataset.open(tmp_path / "part" / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="corpusmill ingest"):
        Dataset.open(tmp_path / "empty")


def test_manifest_refuses_other_schema_versions() -> None:
    manifest = Manifest("ingest", {"a": 1}, []).to_dict()
    assert Manifest.from_dict(manifest).config == {"a": 1}
    manifest["schema_version"] = 99
    with pytest.raises(DatasetError, match="schema_version"):
        Manifest.from_dict(manifest)
