"""Pipeline YAML: keys are the stages' own options, checked before anything runs, errors with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpusmill.curation.dedup.exact_stage import DedupExactOptions
from corpusmill.pipelines.demo import DEMO_PIPELINE
from corpusmill.curation.errors import ConfigError
from corpusmill.pipelines.pipeline import fill_variables, load_pipeline, plan_pipeline


def test_variables_expand_in_strings_and_as_lists() -> None:
    variables = {"out": "/o", "inputs": ["a.jsonl=web", "b"]}
    assert fill_variables("{inputs}", variables) == ["a.jsonl=web", "b"]
    assert fill_variables(["{inputs}", "c"], variables) == ["a.jsonl=web", "b", "c"]
    assert fill_variables("{out}/ingested", variables) == "/o/ingested"
    assert fill_variables(8000, variables) == 8000


def test_shipped_demo_pipeline_plans_every_step() -> None:
    planned = plan_pipeline(load_pipeline(DEMO_PIPELINE), {"out": "/o", "inputs": ["x"], "blend_specs": "/b"})
    assert [item.command.name for item in planned][:4] == ["ingest", "dedup exact", "dedup fuzzy", "classify"]
    assert planned[1].options == DedupExactOptions(input="/o/ingested", out="/o/dedup_exact")
    assert all(item.options.out.startswith("/o/") for item in planned)


def _pipeline(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def _plan(path: Path) -> None:
    plan_pipeline(load_pipeline(path), {"out": "/o"})


STEPS = "steps:\n  - stage: dedup exact\n    input: in\n    out: '{out}/x'\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (STEPS + "    partitons: 4\n", ":5: step 1 (dedup exact): unknown key `partitons`"),
        (STEPS + "    partitions: four\n", ":5: step 1 (dedup exact): `partitions` must be an integer"),
        (STEPS + "  - stage: dedup exakt\n    input: x\n", ":5: step 2 (dedup exakt): unknown stage `dedup exakt`"),
        ("steps:\n  - stage: dedup exact\n    input: in\n", ":2: step 1 (dedup exact): missing required key(s) `out`"),
        (STEPS + "  - stage: run\n    pipeline: p.yaml\n    out: o\n", ":5: step 2 (run): a pipeline step cannot run"),
        ("steps:\n  - out: x\n", ":2: step 1 needs a `stage`"),
        (
            "steps:\n  - stage: dedup fuzzy\n    input: in\n    out: o\n    bands: 3\n",
            ":2: step 1 (dedup fuzzy): give both --bands and --rows",
        ),
        ("name: x\n", "expected a mapping with a non-empty `steps` list"),
        ("steps: [\n", "not valid YAML"),
        ("steps:\n  - !!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ],
)
def test_errors_name_the_file_line_step_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = _pipeline(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        _plan(path)
    assert str(error.value).startswith(str(path)) and message in str(error.value), str(error.value)
