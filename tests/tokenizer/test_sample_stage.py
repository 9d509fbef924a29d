"""`tokenizer sample` on real classified documents: composition, accounting, columns, determinism."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path

import pyarrow.compute as pc
import pytest

from corpusmill.curation.atomic import read_json
from corpusmill.curation.dataset import Dataset
from corpusmill.curation.executor import SerialExecutor
from corpusmill.curation.progress import RecordingProgress
from corpusmill.tokenizer.composition import COMPOSITION_FILE
from corpusmill.tokenizer.sample_stage import COPIES_COLUMN, SampleOptions, sample
from corpusmill.tokenizer.sampling import SamplingError, SamplingPlan, parse_multipliers

PLAN = SamplingPlan(upsample=("multilingual=3", "code=0.5"), max_bytes=500_000, seed=3)


def _sample(inputs: list[Path], out: Path, plan: SamplingPlan = PLAN, executor: SerialExecutor | None = None):
    options = SampleOptions(inputs=tuple(map(str, inputs)), out=str(out), **asdict(plan))
    return sample(options, executor=executor or SerialExecutor())


@pytest.fixture(scope="module")
def drawn(classified_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "out"
    result = _sample([classified_dataset], out)
    assert result.composition == read_json(out / COMPOSITION_FILE)
    return out


def _bytes_by_category(table, weights=None) -> Counter:
    sizes = pc.binary_length(table["text"]).to_pylist()
    weights = weights or [1] * len(sizes)
    totals: Counter = Counter()
    for category, size, weight in zip(table["category"].to_pylist(), sizes, weights):
        totals[category] += size * weight
    return totals


def test_composition_report_matches_input_and_output(classified_dataset, drawn):
    source = Dataset.open(classified_dataset).read_table()
    output = Dataset.open(drawn).read_table()
    report = read_json(drawn / COMPOSITION_FILE)
    before = _bytes_by_category(source)
    after = _bytes_by_category(output, output[COPIES_COLUMN].to_pylist())
    for category, entry in report["by_category"].items():
        assert entry["bytes_before"] == before[category]
        assert entry["bytes_after"] == after[category]
    assert report["total"]["docs_after"] == output.num_rows
    assert report["total"]["copies_after"] == pc.sum(output[COPIES_COLUMN]).as_py()
    assert sum(e["bytes_after"] for e in report["by_language"].values()) == after["english"] + after["multilingual"]
    assert report["total"]["bytes_after"] == pytest.approx(PLAN.max_bytes, rel=0.25)
    multilingual_share = after["multilingual"] / sum(after.values())
    assert multilingual_share > 2 * before["multilingual"] / sum(before.values())  # up-sampled


def test_every_input_column_is_kept_and_accounting_balances(classified_dataset, drawn):
    output = Dataset.open(drawn).read_table()
    source_columns = set(Dataset.open(classified_dataset).read_table().column_names)
    assert set(output.column_names) == source_columns | {COPIES_COLUMN}
    assert len(set(output["id"].to_pylist())) == output.num_rows
    stats = read_json(drawn / "stats.json")
    assert stats["in"]["docs"] == Dataset.open(classified_dataset).num_rows
    assert stats["out"]["docs"] + stats["removed"]["not_sampled"]["docs"] == stats["in"]["docs"]


def test_the_draw_depends_on_the_seed_only(classified_dataset, drawn, tmp_path):
    again = tmp_path / "again"
    _sample([classified_dataset], again)
    reseeded = tmp_path / "reseeded"
    _sample([classified_dataset], reseeded, replace(PLAN, seed=4))

    def draw(root: Path) -> dict[str, int]:
        table = Dataset.open(root).read_table(columns=["id", COPIES_COLUMN])
        return dict(zip(table["id"].to_pylist(), table[COPIES_COLUMN].to_pylist()))

    assert draw(again) == draw(drawn)
    assert draw(reseeded) != draw(drawn)


def test_rerun_says_done_and_unclassified_input_is_refused(classified_dataset, drawn, tmp_path):
    progress = RecordingProgress()
    _sample([classified_dataset], drawn, executor=SerialExecutor(progress))
    assert any("already complete" in note for note in progress.notes)
    plain = tmp_path / "plain"
    table = Dataset.open(classified_dataset).read_table(columns=["id", "text", "source"])
    from .conftest import write_dataset

    write_dataset(plain, table.to_pylist(), schema=None)
    with pytest.raises(SamplingError, match="run `corpusmill classify`"):
        _sample([plain], tmp_path / "out")


def test_upsample_options_parse_or_explain():
    assert parse_multipliers(["multilingual=4", "de=2.5", "Python=0.5"]) == {
        "multilingual": 4,
        "de": 2.5,
        "Python": 0.5,
    }
    with pytest.raises(SamplingError, match="NAME=FACTOR"):
        parse_multipliers(["multilingual:4"])
    with pytest.raises(SamplingError, match="NAME=FACTOR"):
        SampleOptions(inputs=("x",), out="y", upsample=("multilingual:4",))
