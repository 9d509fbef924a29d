"""Issue 15, defect 14 across every stage command that reads a dataset, not just ingest and dedup:
a damaged manifest, a truncated shard and an ``--out`` that is an existing file are each one
line with the fix (exit status 2, no traceback), before anything is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from corpusmill.curation.executor import SerialExecutor
from corpusmill.curation.ingest.stage import IngestOptions, ingest
from corpusmill.pipelines.cli import main

STAGES = {
    "dedup exact": [],
    "dedup fuzzy": [],
    "classify": [],
    "quality": [],
    "lm train": ["--lang", "en"],
    "tokenizer sample": [],
    "tokenize": ["--tokenizer", "/usr/share/doc"],
    "select": ["--where", "true"],
}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory, stdlib_texts: list[str]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    (root / "in.jsonl").write_text("".join(json.dumps({"text": text}) + "\n" for text in stdlib_texts[:20]))
    good = root / "good"
    ingest(IngestOptions(inputs=(str(root / "in.jsonl"),), out=str(good)), executor=SerialExecutor())
    damaged = root / "damaged"
    shutil.copytree(good, damaged)
    (damaged / "manifest.json").write_text('{"schema_version": 1, "shards": [')
    truncated = root / "truncated"
    shutil.copytree(good, truncated)
    shard = sorted((truncated / "shards").glob("*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[:500])
    (root / "a_file").write_text("not a directory")
    return {"good": good, "damaged": damaged, "truncated": truncated, "file": root / "a_file"}


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize(
    ("case", "problem"),
    [("damaged", "manifest.json is damaged (not valid JSON"), ("truncated", "500 bytes, but its manifest records")],
)
def test_a_damaged_input_is_one_line_for_every_stage(
    datasets: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture, stage: str, case: str, problem: str
) -> None:
    out = tmp_path / "out"
    assert main([*stage.split(), str(datasets[case]), "--out", str(out), *STAGES[stage]]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("corpusmill: error: ") and "\n" not in error and "Traceback" not in error, error
    assert str(datasets[case]) in error and problem in error, error
    assert not out.exists()


@pytest.mark.parametrize("stage", STAGES)
def test_an_out_that_is_a_file_is_one_line_for_every_stage(
    datasets: dict[str, Path], capsys: pytest.CaptureFixture, stage: str
) -> None:
    """Stages that need earlier annotations (quality, tokenizer sample) say so first: also one line."""
    before = datasets["file"].read_text()
    assert main([*stage.split(), str(datasets["good"]), "--out", str(datasets["file"]), *STAGES[stage]]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("corpusmill: error: ") and "\n" not in error and "Traceback" not in error, error
    assert datasets["file"].read_text() == before
