"""The main job: `corpusmill demo` on real text from this machine, every stage's books balanced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpusmill.curation.stats import StageStats
from corpusmill.pipelines.cli import main
from corpusmill.pipelines.demo import DEMO_PIPELINE
from corpusmill.pipelines.pipeline import load_pipeline, plan_pipeline


@pytest.mark.usefixtures("ray_session")
def test_demo_runs_every_stage_and_accounts_for_every_document(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "== demo summary" in printed
    out_docs: dict[str, int] = {}
    for planned in plan_pipeline(load_pipeline(DEMO_PIPELINE), {"out": str(out), "inputs": [], "blend_specs": ""}):
        step_out = Path(planned.options.out)
        if not (step_out / "stats.json").exists():  # model, report and blend outputs, not document stages
            assert planned.command.name in {"lm train", "tokenizer train", "tokenizer eval", "blend resolve", "train"}
            assert step_out.exists()
            continue
        stats = StageStats.from_dict(json.loads((step_out / "stats.json").read_text()))
        stats.check()
        assert f"{stats.stage}: " in printed
        step_input = getattr(planned.options, "input", None)
        if step_input in out_docs:
            assert stats.input.docs == out_docs[step_input], planned.command.name
        out_docs[planned.options.out] = stats.output.docs
    ingest = json.loads((out / "ingested" / "stats.json").read_text())
    assert set(ingest["rejected"]) >= {"malformed_json", "invalid_utf8", "missing_text", "non_string_text", "empty_text", "binary"}
    dedup = json.loads((out / "dedup_exact" / "stats.json").read_text())
    assert dedup["removed"]["exact_duplicate"]["docs"] > 0
    assert "[classify] categories: english" in printed or "[classify] categories: code" in printed
    assert "round-trip failures 0 of" in printed
    trainer_blend = json.loads((out / "blend" / "trainer.json").read_text())
    assert trainer_blend and (out / "blend" / "data_path.txt").read_text().strip()
