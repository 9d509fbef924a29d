"""`dedup fuzzy` end to end on Ray, on real near-duplicates, against a brute-force reference."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpusmill.curation.dataset import Dataset
from corpusmill.curation.dedup.fuzzy_stage import DedupFuzzyOptions, FuzzyConfig, dedup_fuzzy
from corpusmill.curation.dedup.shingles import shingle_strings
from corpusmill.curation.errors import ConfigError
from corpusmill.curation.stats import StageStats
from corpusmill.pipelines.cli import main
from corpusmill.pipelines.execution import RayExecutor

pytestmark = pytest.mark.usefixtures("ray_session")

THRESHOLD = 0.8
BAD_ROWS = [("z-blank", "   \n\t "), ("z-null", None), ("z-punctuation", "!!! ??? ... ---")]


@pytest.fixture(scope="module")
def input_dataset(tmp_path_factory: pytest.TempPathFactory, near_duplicate_documents: list[tuple[str, str]]) -> Path:
    rows = near_duplicate_documents + BAD_ROWS
    table = pa.table(
        {
            "id": [doc_id for doc_id, _ in rows],
            "text": pa.array([text for _, text in rows], pa.string()),
            "source": ["machine"] * len(rows),
            "position": list(range(len(rows))),
        }
    )
    root = tmp_path_factory.mktemp("fuzzy") / "input"
    root.mkdir()
    half = table.num_rows // 2
    pq.write_table(table.slice(0, half), root / "part-0.parquet", row_group_size=16)
    pq.write_table(table.slice(half), root / "part-1.parquet", row_group_size=16)
    return root


@pytest.fixture(scope="module")
def expected_clusters(near_duplicate_documents: list[tuple[str, str]]) -> dict[str, str]:
    """Brute force: Jaccard of shingle-string sets for every pair, union-find, smallest id."""
    shingles = {doc_id: set(shingle_strings(text, 5)) for doc_id, text in near_duplicate_documents}
    parent = {doc_id: doc_id for doc_id in shingles}

    def root(doc_id: str) -> str:
        while parent[doc_id] != doc_id:
            doc_id = parent[doc_id]
        return doc_id

    for a, b in itertools.combinations(shingles, 2):
        union = len(shingles[a] | shingles[b])
        if union and len(shingles[a] & shingles[b]) / union >= THRESHOLD:
            first, second = sorted((root(a), root(b)))
            parent[second] = first
    members: dict[str, list[str]] = {}
    for doc_id in shingles:
        members.setdefault(root(doc_id), []).append(doc_id)
    return {doc_id: min(group) for group in members.values() if len(group) > 1 for doc_id in group}


def read_stats(out: Path) -> StageStats:
    stats = StageStats.from_dict(json.loads((out / "stats.json").read_text()))
    stats.check()
    return stats


def clusters_of(out: Path) -> dict[str, str]:
    rows = pq.read_table(out / "clusters.parquet").to_pylist()
    return {row["id"]: row["cluster_id"] for row in rows}


def test_result_matches_brute_force_for_any_partitioning(
    input_dataset: Path, expected_clusters: dict[str, str], tmp_path: Path
) -> None:
    single = dedup_fuzzy(
        DedupFuzzyOptions(input=str(input_dataset), out=str(tmp_path / "single"), partitions=1),
        executor=RayExecutor(),
    )
    distributed = dedup_fuzzy(
        DedupFuzzyOptions(
            input=str(input_dataset), out=str(tmp_path / "distributed"), partitions=4, single_node_max_edges=0
        ),
        executor=RayExecutor(),
    )
    assert len(expected_clusters) > 40 and len(set(expected_clusters.values())) > 8  # real clusters exist

    for out in (tmp_path / "single", tmp_path / "distributed"):
        assert clusters_of(out) == expected_clusters
        kept = Dataset.open(out).read_table()
        removed = {doc_id for doc_id, cluster_id in expected_clusters.items() if doc_id != cluster_id}
        all_ids = set(pq.read_table(input_dataset, columns=["id"])["id"].to_pylist())
        assert set(kept["id"].to_pylist()) == all_ids - removed - {"z-blank", "z-null"}
        assert kept.column_names == ["id", "text", "source", "position"]  # other columns kept

        stats = read_stats(out)
        assert stats.removed["near_duplicate"].docs == len(removed)
        assert {reason: tally.docs for reason, tally in stats.rejected.items()} == {"empty_text": 1, "missing_text": 1}
        counters = stats.extra
        assert counters["components"] == len(set(expected_clusters.values()))
        assert counters["documents_in_components"] == len(expected_clusters)
        assert counters["pairs_examined"] == counters["pairs_verified"] + counters["pairs_rejected"]
        assert counters["documents_without_shingles"] == 1
        assert sum(v for k, v in counters.items() if k.startswith("component_size:")) == counters["components"]

    assert read_stats(tmp_path / "distributed").extra["components_star_rounds"] >= 1
    assert read_stats(tmp_path / "single").extra["components_single_node"] == 1
    assert [s.rows for s in single.shards] == [s.rows for s in distributed.shards]
    for left, right in zip(single.shards, distributed.shards, strict=True):
        single_rows = Dataset.open(tmp_path / "single").iter_batches(left)
        distributed_rows = Dataset.open(tmp_path / "distributed").iter_batches(right)
        assert pa.concat_tables(single_rows).equals(pa.concat_tables(distributed_rows))


def test_cli_runs_resumes_and_supports_estimate(input_dataset: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "cli"
    argv = ["dedup", "fuzzy", str(input_dataset), "--out", str(out), "--verify", "estimate", "--threshold", "0.9"]
    assert main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["verify"] == "estimate"
    resolved = FuzzyConfig(threshold=0.9).resolved()
    assert (manifest["config"]["bands"], manifest["config"]["rows"]) == (resolved.bands, resolved.rows)
    assert read_stats(out).extra["components"] > 0
    assert main(argv) == 0
    assert "already complete" in capsys.readouterr().err


def test_bad_input_and_settings_fail_with_a_fix(input_dataset: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    no_text = tmp_path / "no_text"
    no_text.mkdir()
    pq.write_table(pa.table({"id": ["a"], "source": ["s"]}), no_text / "part.parquet")
    assert main(["dedup", "fuzzy", str(no_text), "--out", str(tmp_path / "o1")]) == 2
    assert "missing required column(s) ['text']" in capsys.readouterr().err

    assert main(["dedup", "fuzzy", str(input_dataset), "--out", str(tmp_path / "o2"), "--bands", "8"]) == 2
    err = capsys.readouterr().err
    assert "corpusmill: error: give both --bands and --rows" in err and "Traceback" not in err
    assert not (tmp_path / "o2").exists()
    with pytest.raises(ConfigError, match="bands \\* rows"):
        FuzzyConfig(bands=20, rows=10)
    with pytest.raises(ConfigError, match="threshold"):
        FuzzyConfig(threshold=1.5)
