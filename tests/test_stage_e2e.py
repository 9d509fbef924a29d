"""End to end on Ray: ingest and exact dedup on real text with every bad-input case."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import ray.cloudpickle

from corpusmill.curation.dataset import Dataset, Manifest
from corpusmill.curation.dedup.exact_stage import DedupExactOptions, dedup_exact
from corpusmill.curation.executor import Executor
from corpusmill.curation.ingest.stage import IngestOptions, ingest
from corpusmill.curation.progress import RecordingProgress
from corpusmill.curation.stage import StageConfigMismatch
from corpusmill.curation.stats import StageStats
from corpusmill.pipelines.cli import main
from corpusmill.pipelines.execution import RayExecutor

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
pytestmark = pytest.mark.usefixtures("ray_session")

EXPECTED_REJECTS = {
    "malformed_json": 2,
    "non_string_text": 1,
    "missing_text": 1,
    "empty_text": 2,
    "invalid_utf8": 2,
    "binary": 2,
}


def inputs_of(raw: Path) -> list[str]:
    return [str(raw / "web.jsonl.gz"), str(raw / "books.jsonl"), f"{raw / 'tree'}=code"]


def ingest_to(inputs: list[str], out: Path, executor: Executor | None = None) -> Manifest:
    return ingest(IngestOptions(inputs=tuple(inputs), out=str(out)), executor=executor or RayExecutor())


def dedup_to(input_dir: Path, out: Path, partitions: int, executor: Executor | None = None) -> Manifest:
    options = DedupExactOptions(input=str(input_dir), out=str(out), partitions=partitions)
    return dedup_exact(options, executor=executor or RayExecutor())


def read_stats(out: Path) -> StageStats:
    stats = StageStats.from_dict(json.loads((out / "stats.json").read_text()))
    stats.check()
    return stats


def sorted_rows(out: Path) -> list[dict[str, Any]]:
    return sorted(Dataset.open(out).read_table().to_pylist(), key=lambda row: row["id"])


def test_ingest_then_dedup_exact(small_corpus: Path, tmp_path: Path) -> None:
    ingested, deduped = tmp_path / "ingested", tmp_path / "dedup"
    assert main(["ingest", *inputs_of(small_corpus), "--out", str(ingested)]) == 0

    rejects = Dataset.open(ingested / "rejects").read_table().to_pylist()
    counts: dict[str, int] = {}
    for reject in rejects:
        counts[reject["reason"]] = counts.get(reject["reason"], 0) + 1
        assert reject["location"] and reject["stage"] == "ingest"
    assert counts == EXPECTED_REJECTS
    stats = read_stats(ingested)
    assert stats.output.docs == 31 + 15 + 5
    assert {reason: tally.docs for reason, tally in stats.rejected.items()} == EXPECTED_REJECTS

    docs = sorted_rows(ingested)
    assert len({d["id"] for d in docs}) == len(docs)
    web = [d for d in docs if d["source"] == "web"]
    assert {d["url"] for d in web} == {f"https://example.org/{i}" for i in range(30)} | {"dup"}
    assert sorted(d["rank"] for d in web if d["rank"] is not None) == list(range(30))
    code = [d for d in docs if d["source"] == "code"]
    assert sorted(d["path"] for d in code) == [f"pkg/mod{i}.py" for i in range(5)]

    assert main(["dedup", "exact", str(ingested), "--out", str(deduped)]) == 0
    kept = sorted_rows(deduped)
    by_text: dict[str, list[str]] = {}
    for doc in docs:
        by_text.setdefault(doc["text"], []).append(doc["id"])
    assert sorted(d["id"] for d in kept) == sorted(min(ids) for ids in by_text.values())
    duplicates = pq.read_table(deduped / "duplicates.parquet").to_pylist()
    expected_pairs = sorted((i, min(ids)) for ids in by_text.values() for i in ids if i != min(ids))
    assert sorted((d["id"], d["kept_id"]) for d in duplicates) == expected_pairs
    dedup_stats = read_stats(deduped)
    assert dedup_stats.removed["exact_duplicate"].docs == len(expected_pairs) > 0
    assert dedup_stats.input.docs == stats.output.docs


def test_partitioning_never_changes_exact_dedup(small_corpus: Path, tmp_path: Path) -> None:
    ingest_to(inputs_of(small_corpus), tmp_path / "in")
    one = dedup_to(tmp_path / "in", tmp_path / "p1", partitions=1)
    four = dedup_to(tmp_path / "in", tmp_path / "p4", partitions=4)
    assert sorted_rows(tmp_path / "p1") == sorted_rows(tmp_path / "p4")
    assert [s.rows for s in one.shards] == [s.rows for s in four.shards]
    assert pq.read_table(tmp_path / "p1" / "duplicates.parquet").equals(pq.read_table(tmp_path / "p4" / "duplicates.parquet"))


def test_rerun_is_a_noop_and_other_settings_are_refused(small_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = ingest_to(inputs_of(small_corpus), out)
    progress = RecordingProgress()
    again = ingest_to(inputs_of(small_corpus), out, RayExecutor(progress=progress))
    assert any("already complete" in note for note in progress.notes)
    assert again.to_dict() == first.to_dict()
    with pytest.raises(StageConfigMismatch, match="other settings"):
        ingest_to(inputs_of(small_corpus)[:1], out)
    assert main(["ingest", inputs_of(small_corpus)[0], "--out", str(out)]) == 2


class CrashAfterWriting:
    """Runs a unit's work, then dies before its completion record: the worst moment to crash."""

    def __init__(self, task: Any, unit_id: str):
        self.task, self.unit_id = task, unit_id

    def __call__(self, unit: dict[str, Any]) -> dict[str, Any]:
        if unit["unit_id"] == self.unit_id:
            self.task.unit_fn(unit, self.task.run)
            raise RuntimeError(f"injected failure in {self.unit_id}")
        return self.task(unit)


class CrashingExecutor:
    """The Ray executor, except that one unit of one phase crashes after writing its files."""

    def __init__(self, unit_id: str, phase: str):
        self.inner = RayExecutor()
        self.progress = self.inner.progress
        self.unit_id, self.phase = unit_id, phase

    def map(self, units: list[dict[str, Any]], task: Any, *, label: str, num_cpus: float = 1.0) -> list[dict[str, Any]]:
        if task.phase == self.phase:
            task = CrashAfterWriting(task, self.unit_id)
        return self.inner.map(units, task, label=label, num_cpus=num_cpus)


@pytest.mark.parametrize(("phase", "leftovers"), [("read", "_work/read/shards"), ("place", "shards")])
def test_interrupted_ingest_resumes_to_the_same_result(
    small_corpus: Path, tmp_path: Path, phase: str, leftovers: str
) -> None:
    reference = tmp_path / "reference"
    ingest_to(inputs_of(small_corpus), reference)
    out = tmp_path / "resumed"
    with pytest.raises(Exception, match="injected failure"):
        ingest_to(inputs_of(small_corpus), out, CrashingExecutor("u00001", phase))
    assert not (out / "manifest.json").exists()
    assert list((out / leftovers).glob("u00001-*")), "the crashed unit left its shards behind"
    ingest_to(inputs_of(small_corpus), out)
    assert sorted_rows(out) == sorted_rows(reference)
    assert read_stats(out).to_dict() == read_stats(reference).to_dict()
    assert Dataset.open(out / "rejects").num_rows == Dataset.open(reference / "rejects").num_rows


def test_interrupted_dedup_resumes_to_the_same_result(small_corpus: Path, tmp_path: Path) -> None:
    ingest_to(inputs_of(small_corpus), tmp_path / "in")
    dedup_to(tmp_path / "in", tmp_path / "reference", partitions=2)
    out = tmp_path / "resumed"
    with pytest.raises(Exception, match="injected failure"):
        dedup_to(tmp_path / "in", out, partitions=2, executor=CrashingExecutor("s00000", "filter"))
    dedup_to(tmp_path / "in", out, partitions=3)  # the first run's partition count is reused
    assert sorted_rows(out) == sorted_rows(tmp_path / "reference")
    assert read_stats(out).to_dict() == read_stats(tmp_path / "reference").to_dict()


def test_foreign_parquet_without_required_columns_is_refused_up_front(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import pyarrow as pa

    (tmp_path / "foreign").mkdir()
    pq.write_table(pa.table({"id": ["a"], "text": ["hello"]}), tmp_path / "foreign" / "part-0.parquet")
    assert main(["dedup", "exact", str(tmp_path / "foreign"), "--out", str(tmp_path / "out")]) == 2
    assert "missing required column(s) ['source']" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
