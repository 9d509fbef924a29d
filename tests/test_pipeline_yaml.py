"""Pipeline YAML -> CLI words."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpusmill.pipelines.cli import build_parser
from corpusmill.pipelines.pipeline import PipelineError, load_pipeline, step_argv


def test_step_argv_expands_variables_and_flags() -> None:
    step = {"stage": "ingest", "inputs": "{inputs}", "out": "{out}/ingested", "text_field": "body", "overwrite": False}
    argv = step_argv(step, {"out": "/o", "inputs": ["a.jsonl=web", "b"]})
    assert argv == ["ingest", "a.jsonl=web", "b", "--out", "/o/ingested", "--text-field", "body"]
    args = build_parser().parse_args(argv)
    assert args.inputs == ["a.jsonl=web", "b"] and args.text_field == "body"


def test_shipped_demo_pipeline_parses() -> None:
    pipeline = load_pipeline(Path(__file__).parents[1] / "pipelines" / "demo.yaml")
    parser = build_parser()
    for step in pipeline["steps"]:
        parser.parse_args(step_argv(step, {"out": "/o", "inputs": ["x"]}))


def test_malformed_pipeline_names_the_step(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("steps:\n  - out: x\n")
    with pytest.raises(PipelineError, match="step 1"):
        load_pipeline(path)
