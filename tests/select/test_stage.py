"""`corpusmill select` end to end: exactly the reference's rows kept, the rest accounted and listed,
bad expressions refused before any work, resumable after a crash, and usable as a pipeline step."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from textwrap import dedent
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpusmill.curation.atomic import read_json
from corpusmill.curation.dataset import Dataset
from corpusmill.curation.errors import ConfigError
from corpusmill.curation.executor import SerialExecutor
from corpusmill.curation.progress import RecordingProgress
from corpusmill.curation.select.stage import REMOVED_FILE, SelectOptions, select
from corpusmill.curation.stage import PROGRESS_DIR, StageConfigMismatch
from corpusmill.pipelines.cli import main
from corpusmill.pipelines.runner import run_pipeline

# Two predicates over numeric, string, list and null columns, with their plain-Python twins.
WHERE = "lines >= 150 and ('todo' not in reasons or has_main) and first_import is not null"


def reference(row: dict[str, Any]) -> bool:
    """WHERE by hand: a null anywhere in an `and` that is not otherwise false drops the row."""
    if row["lines"] < 150 or row["first_import"] is None:
        return False
    if row["reasons"] is None:
        return row["has_main"] is True  # null `not in` is null; null or true is true
    return "todo" not in row["reasons"] or row["has_main"] is True


def run_select(source: Path, out: Path, where: str = WHERE, executor: Any = None) -> Any:
    return select(SelectOptions(input=str(source), out=str(out), where=where), executor=executor or SerialExecutor())


def shard_rows(out: Path) -> list[dict[str, Any]]:
    return Dataset.open(out).read_table().to_pylist()


def test_keeps_exactly_the_reference_rows_and_accounts_for_the_rest(annotated: Any, tmp_path: Path) -> None:
    out = tmp_path / "selected"
    manifest = run_select(annotated.root, out)
    kept = [row for row in annotated.documents if reference(row)]
    removed = [row for row in annotated.documents if not reference(row)]
    assert 10 < len(kept) < len(annotated.documents) - 10
    assert [row["id"] for row in shard_rows(out)] == [row["id"] for row in kept]
    assert manifest.rows == len(kept)
    assert shard_rows(out)[0]["text"] == kept[0]["text"], "documents pass through whole"
    assert "score" in manifest.columns and "reasons" in manifest.columns, "every column is kept"

    listed = pq.read_table(out / REMOVED_FILE)
    assert listed.schema == pa.schema([("id", pa.string()), ("reason", pa.string())])
    assert listed["id"].to_pylist() == [row["id"] for row in removed]
    assert set(listed["reason"].to_pylist()) == {WHERE}

    stats = read_json(out / "stats.json")

    def nbytes(rows: list[dict[str, Any]]) -> int:
        return sum(len(row["text"].encode()) for row in rows)

    assert stats["out"] == {"docs": len(kept), "bytes": nbytes(kept)}
    assert stats["removed"] == {"select": {"docs": len(removed), "bytes": nbytes(removed)}}
    assert stats["rejected"] == {"empty_text": {"docs": 2, "bytes": 4}}
    assert stats["in"]["docs"] == len(kept) + len(removed) + 2
    assert sorted(Dataset.open(out / "rejects").read_table()["id"].to_pylist()) == annotated.blank_ids


def test_a_column_some_shards_lack_is_null_there(annotated: Any, tmp_path: Path) -> None:
    run_select(annotated.root, tmp_path / "scored", where="score > 0.03 or score is null and source == 'tools'")
    ids = [row["id"] for row in shard_rows(tmp_path / "scored")]
    expected = [
        row["id"]
        for row in annotated.documents
        if (row.get("score") is not None and row["score"] > 0.03)
        or (row.get("score") is None and row["source"] == "tools")
    ]
    assert ids == expected
    assert any("score" not in row for row in annotated.documents if row["id"] in ids), "the lacking shard contributes"


@pytest.mark.parametrize(
    "where, problem",
    [
        ("lnies > 3", r"--where: unknown column `lnies`; did you mean `lines`\? \(columns: id, text, source, lines, "),
        ("lines > 'many'", r"--where: `lines > 'many'` compares a number with a string"),
        ("lines.bit_length() > 3", r"--where: unexpected character '\.': attribute access is not part"),
    ],
)
def test_a_bad_expression_is_refused_before_any_work(annotated: Any, tmp_path: Path, where: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        run_select(annotated.root, tmp_path / "out", where=where)
    assert not (tmp_path / "out").exists()


def test_the_cli_prints_the_error_with_its_caret(annotated: Any, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert (
        main(["select", str(annotated.root), "--out", str(tmp_path / "out"), "--where", "has_main and lnies > 1"]) == 2
    )
    err = capsys.readouterr().err
    assert err.splitlines() == [
        (
            "corpusmill: error: --where: unknown column `lnies`; did you mean `lines`? (columns: id, text, source, "
            "lines, mean_line, score, first_import, reasons, has_main) (at position 13)"
        ),
        "  has_main and lnies > 1",
        "               ^",
    ]
    assert not (tmp_path / "out").exists()


def test_a_rerun_is_a_no_op_and_other_settings_are_refused(annotated: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_select(annotated.root, out)
    progress = RecordingProgress()
    again = run_select(annotated.root, out, executor=SerialExecutor(progress))
    assert any("already complete" in note for note in progress.notes)
    assert again.to_dict() == first.to_dict()
    with pytest.raises(StageConfigMismatch, match="other settings"):
        run_select(annotated.root, out, where="lines > 1")


def test_selecting_nothing_gives_an_empty_dataset_that_selects_again(annotated: Any, tmp_path: Path) -> None:
    manifest = run_select(annotated.root, tmp_path / "none", where="false")
    assert manifest.rows == 0 and manifest.shards == []
    assert pq.read_table(tmp_path / "none" / REMOVED_FILE).num_rows == len(annotated.documents)
    again = run_select(tmp_path / "none", tmp_path / "still_none", where="lines > 1")
    assert again.rows == 0 and read_json(tmp_path / "still_none" / "stats.json")["in"] == {"docs": 0, "bytes": 0}


class CrashAfter(SerialExecutor):
    """Dies after ``units_before_crash`` units, the last of them killed after writing its files
    (its removed.parquet part included) but before its completion record."""

    def __init__(self, out: Path, units_before_crash: int):
        super().__init__()
        self.out, self.units_before_crash = out, units_before_crash

    def map(
        self, units: Sequence[dict[str, Any]], fn: Callable[..., dict[str, Any]], *, label: str, num_cpus: float = 1.0
    ) -> list[dict[str, Any]]:
        for done, unit in enumerate(units, start=1):
            fn(unit)
            if done == self.units_before_crash:
                (self.out / PROGRESS_DIR / "select" / f"{unit['unit_id']}.json").unlink()
                raise RuntimeError("injected crash")
        return []


@pytest.mark.parametrize("units_before_crash", [1, 3])
def test_resume_after_a_crash_equals_an_uninterrupted_run(
    annotated: Any, tmp_path: Path, units_before_crash: int
) -> None:
    clean = tmp_path / "clean"
    run_select(annotated.root, clean)
    out = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="injected crash"):
        run_select(annotated.root, out, executor=CrashAfter(out, units_before_crash))
    assert not (out / "manifest.json").exists() and not (out / REMOVED_FILE).exists()
    assert list((out / "_work" / "select").glob("*.parquet")), "the crashed run left removed-id parts behind"
    run_select(annotated.root, out)
    assert shard_rows(out) == shard_rows(clean)
    assert pq.read_table(out / REMOVED_FILE).equals(pq.read_table(clean / REMOVED_FILE))
    assert read_json(out / "stats.json") == read_json(clean / "stats.json")
    assert Dataset.open(out / "rejects").num_rows == 2
    assert not (out / "_work").exists()


def test_a_pipeline_step_selects_and_a_bad_where_stops_the_pipeline_before_it_starts(
    annotated: Any, tmp_path: Path
) -> None:
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        dedent(f"""\
        steps:
          - stage: select
            input: {annotated.root}
            out: "{{out}}/long"
            where: "lines > 500"
          - stage: select
            input: "{{out}}/long"
            out: "{{out}}/long_main"
            where: has_main
        """)
    )
    run_pipeline(pipeline, str(tmp_path / "run"), SerialExecutor())
    expected = [row["id"] for row in annotated.documents if row["lines"] > 500 and row["has_main"] is True]
    assert [row["id"] for row in shard_rows(tmp_path / "run" / "long_main")] == expected
    assert read_json(tmp_path / "run" / "long" / "stats.json")["rejected"] == {"empty_text": {"docs": 2, "bytes": 4}}

    pipeline.write_text(pipeline.read_text().replace("where: has_main", "where: has_main()"))
    with pytest.raises(ConfigError, match=r"--where: function calls are not part of the language"):
        run_pipeline(pipeline, str(tmp_path / "bad"), SerialExecutor())
    assert not (tmp_path / "bad").exists(), "the syntax error is found before the first step runs"


def test_select_on_ray_equals_serial(annotated: Any, tmp_path: Path, ray_session: None) -> None:
    from corpusmill.pipelines.execution import RayExecutor

    run_select(annotated.root, tmp_path / "serial")
    run_select(annotated.root, tmp_path / "ray", executor=RayExecutor())
    assert shard_rows(tmp_path / "ray") == shard_rows(tmp_path / "serial")
    assert pq.read_table(tmp_path / "ray" / REMOVED_FILE).equals(pq.read_table(tmp_path / "serial" / REMOVED_FILE))
