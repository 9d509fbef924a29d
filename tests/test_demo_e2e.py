"""The main job: `corpusmill demo` (pipelines/nemotron4.yaml, profile demo) on real text from this machine:
every step of the recipe runs, every stage's books balance, both blend phases and a short training run."""

from __future__ import annotations

import json
from pathlib import Path

from corpusmill.curation.stats import StageStats


def test_demo_runs_every_stage_and_accounts_for_every_document(demo_run) -> None:
    out, printed = demo_run.out, demo_run.printed
    assert demo_run.returncode == 0
    assert "== demo summary" in printed
    record = json.loads((out / "pipeline_run.json").read_text())
    assert record["status"] == "succeeded" and all(step["status"] == "succeeded" for step in record["steps"])
    assert Path(record["pipeline"]).name == "nemotron4.yaml" and record["profile"] == "demo"
    assert [step["stage"] for step in record["steps"]] == [
        "ingest", "dedup exact", "dedup fuzzy", "classify", "select", "lm train", "quality", "select", "tokenizer sample",
        "tokenizer train", "tokenizer eval", "tokenize", "blend resolve", "blend resolve", "train",
    ]  # fmt: skip
    out_docs: dict[str, int] = {}
    for step in record["steps"]:
        step_out = Path(step["out"])
        if not (step_out / "stats.json").exists():  # model, report and blend outputs, not document stages
            assert step["stage"] in {"lm train", "tokenizer train", "tokenizer eval", "blend resolve", "train"}
            assert step_out.exists()
            continue
        stats = StageStats.from_dict(json.loads((step_out / "stats.json").read_text()))
        stats.check()
        assert f"{stats.stage}: " in printed
        step_input = step["options"].get("input")
        if step_input in out_docs:
            assert stats.input.docs == out_docs[step_input], step["name"]
        out_docs[step["out"]] = stats.output.docs
    ingest = json.loads((out / "ingested" / "stats.json").read_text())
    assert set(ingest["rejected"]) >= {"malformed_json", "invalid_utf8", "missing_text", "non_string_text", "empty_text", "binary"}
    dedup = json.loads((out / "dedup_exact" / "stats.json").read_text())
    assert dedup["removed"]["exact_duplicate"]["docs"] > 0
    assert "[classify] categories: english" in printed or "[classify] categories: code" in printed
    assert "round-trip failures 0 of" in printed
    for directory, phase in (("blend", "pretrain"), ("blend_continued", "continued")):
        trainer_blend = json.loads((out / directory / "trainer.json").read_text())
        assert trainer_blend["phase"] == phase and (out / directory / "data_path.txt").read_text().strip()
    tokenized = json.loads((out / "tokenized" / "tokenized.json").read_text())
    assert {prefix["keys"].get("quality_bucket") for prefix in tokenized["prefixes"]} >= {"high", "medium"}
    metrics = (out / "train" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 36 and {json.loads(line)["phase"] for line in metrics} == {0, 1}  # both phases trained
    assert f"report: {out / 'report.html'}" in printed and (out / "report.html").stat().st_size > 10_000
