"""Pipeline YAML: keys are the stages' own options, profiles and --set override them, and every mistake is
found before anything runs, with the file and line (or the --set argument) it came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpusmill.curation.dedup.exact_stage import DedupExactOptions
from corpusmill.curation.errors import ConfigError
from corpusmill.pipelines.demo import DEMO_PIPELINE
from corpusmill.pipelines.pipeline import default_step_names, fill_variables, load_pipeline, plan_pipeline

LICENSES = "/usr/share/common-licenses"


def test_variables_expand_in_strings_and_as_values() -> None:
    variables = {"out": "/o", "inputs": ["a.jsonl=web", "b"], "vocab": 8000}
    assert fill_variables("{inputs}", variables) == ["a.jsonl=web", "b"]
    assert fill_variables(["{inputs}", "c"], variables) == ["a.jsonl=web", "b", "c"]
    assert fill_variables("{out}/ingested", variables) == "/o/ingested"
    assert fill_variables("{vocab}", variables) == 8000
    assert fill_variables("v{vocab}", variables) == "v8000"
    assert fill_variables("a{2,3}", variables) == "a{2,3}"  # not a variable reference
    assert fill_variables(8000, variables) == 8000


def test_default_names_are_the_stage_words_numbered_when_repeated() -> None:
    stages = ["ingest", "dedup exact", "blend resolve", "blend resolve"]
    assert default_step_names(stages) == ["ingest", "dedup_exact", "blend_resolve_1", "blend_resolve_2"]


def test_shipped_demo_pipeline_plans_every_step() -> None:
    plan = plan_pipeline(load_pipeline(DEMO_PIPELINE), out="/o", variables={"inputs": ["x"]}, check_paths=False)
    assert [item.command.name for item in plan.steps][:4] == ["ingest", "dedup exact", "dedup fuzzy", "classify"]
    assert plan.steps[1].options == DedupExactOptions(input="/o/ingested", out="/o/dedup_exact")
    assert plan.steps[1].reads == (("input", "/o/ingested"),)
    assert all(item.options.out.startswith("/o/") for item in plan.steps)
    assert plan.selected == tuple(item.name for item in plan.steps)


def test_the_nemotron4_pipeline_takes_its_sizes_from_its_profiles() -> None:
    pipeline = load_pipeline(DEMO_PIPELINE.with_name("nemotron4.yaml"))
    sizes = {}
    for profile in ("demo", "full"):
        plan = plan_pipeline(pipeline, out="/o", profile=profile, variables={"inputs": [f"{LICENSES}=licenses"]})
        steps = {item.name: item.options for item in plan.steps}
        sizes[profile] = (steps["tokenizer_train"].vocab_size, steps["blend_pretrain"].tokens)
        assert steps["blend_pretrain"].shards == ("/o/tokenized",) and Path(steps["blend_pretrain"].spec).exists()
    assert sizes == {"demo": (8000, 20e6), "full": (256000, 8e12)}


PROFILED = f"""\
name: p
variables:
  licenses: {LICENSES}
  partitions: 4
profiles:
  small:
    variables: {{partitions: 2}}
    steps:
      dedup: {{partitions: 3}}
    skip: [dedup]
  big:
    variables: {{partitions: 16}}
steps:
  - stage: ingest
    inputs: ["{{licenses}}=licenses"]
    out: "{{out}}/ingested"
  - name: dedup
    stage: dedup exact
    input: "{{out}}/ingested"
    out: "{{out}}/dedup"
    partitions: "{{partitions}}"
"""


def _pipeline(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_profiles_variables_and_set_in_order_of_precedence(tmp_path: Path) -> None:
    pipeline = load_pipeline(_pipeline(tmp_path, PROFILED))
    out = str(tmp_path / "o")

    def partitions(**kwargs: object) -> int:
        return plan_pipeline(pipeline, out=out, **kwargs).steps[1].options.partitions

    assert partitions() == 4  # the pipeline's variable
    assert partitions(profile="big") == 16  # the profile's variable
    assert partitions(profile="small") == 3  # the profile's step key beats the variable
    assert partitions(profile="small", settings=["dedup.partitions=5"]) == 5  # --set beats the profile
    assert partitions(settings=["partitions=7"]) == 7  # --set of a variable
    assert plan_pipeline(pipeline, out=out, profile="small").selected == ("ingest",)  # skip: [dedup]
    assert plan_pipeline(pipeline, out=out, only=["2"], check_paths=False).selected == ("dedup",)
    assert plan_pipeline(pipeline, out=out, from_step="dedup", check_paths=False).selected == ("dedup",)


def _error(path: Path, **kwargs: object) -> str:
    with pytest.raises(ConfigError) as error:
        plan_pipeline(load_pipeline(path), out=str(path.parent / "o"), **kwargs)
    return str(error.value)


STEPS = "steps:\n  - stage: dedup exact\n    input: /usr/share/doc\n    out: '{out}/x'\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (STEPS + "    partitons: 4\n", ":5: step 1 (dedup_exact): unknown key `partitons`"),
        (STEPS + "    partitions: four\n", ":5: step 1 (dedup_exact): `partitions` must be an integer"),
        (STEPS + "  - stage: dedup exakt\n    input: x\n", ":5: step 2 (dedup_exakt): unknown stage `dedup exakt`"),
        ("steps:\n  - stage: dedup exact\n    input: in\n", ":2: step 1 (dedup_exact): missing required key(s) `out`"),
        (STEPS + "  - stage: run\n    pipeline: p.yaml\n    out: o\n", ":5: step 2 (run): a pipeline step cannot run"),
        (STEPS + "  - stage: report\n    run_dir: o\n", ":5: step 2 (report): a pipeline step cannot run"),
        ("steps:\n  - out: x\n", ":2: step 1 needs a `stage`"),
        (
            "steps:\n  - stage: dedup fuzzy\n    input: in\n    out: o\n    bands: 3\n",
            ":2: step 1 (dedup_fuzzy): give both --bands and --rows",
        ),
        ("name: x\n", ": missing `steps`"),
        ("steps: [\n", ":2:1: not valid YAML"),
        ("steps:\n  - !!python/object/apply:os.system ['true']\n", ":2:5: the tag !!python/object/apply:os.system is refused"),
        ("stepz: []\n" + STEPS, ":1: unknown top-level key `stepz`"),
        (STEPS + "  - stage: dedup exact\n    name: dedup_exact_1\n    input: /usr/share/doc\n    out: '{out}/y'\n",
         ":6: step 2: another step is already named `dedup_exact_1`"),
        (STEPS.replace("/usr/share/doc", "'{inputs}'"), ":3: step 1 (dedup_exact): `input` uses {inputs}, which is not a variable"),
        (STEPS.replace("/usr/share/doc", "{inputs}"), ":3: step 1 (dedup_exact): `input` is the YAML mapping {inputs: null}; "
         "to use the variable, quote it: \"{inputs}\""),
        ("variables:\n  inputs: null\n" + STEPS.replace("/usr/share/doc", "'{inputs}'"),
         ":5: step 1 (dedup_exact): `input` uses {inputs}, which has no value: give it with --set inputs=VALUE"),
        (STEPS.replace("/usr/share/doc", "/no/such/dataset"), ":3: step 1 (dedup_exact): `input` reads /no/such/dataset, but it does not exist"),
        (STEPS.replace("/usr/share/doc", "'{out}/ingestd'"),
         ":3: step 1 (dedup_exact): `input` reads {o}/ingestd, but no earlier step makes it (earlier steps write: nothing)"),
        (STEPS.replace("/usr/share/doc", "'{out}/y'") + "  - stage: ingest\n    inputs: [/usr/share/doc]\n    out: '{out}/y'\n",
         ":3: step 1 (dedup_exact): `input` reads {o}/y, which step 2 (ingest) makes only later: move this step after it"),
        (STEPS + "  - stage: ingest\n    inputs: [/usr/share/doc]\n    out: '{out}/x'\n",
         ":7: step 2 (ingest): writes {o}/x, as step 1 (dedup_exact) does"),
        ("profiles:\n  demo:\n    steps:\n      dedup: {partitions: 2}\n" + STEPS,
         ":4: profile `demo`: no step named `dedup` (steps: dedup_exact)"),
        ("profiles:\n  demo:\n    steps:\n      dedup_exact: {partitons: 2}\n" + STEPS,
         ":4: step 1 (dedup_exact): unknown key `partitons`"),
        ("profiles:\n  demo:\n    variables: {vocab: 8}\n" + STEPS, ":3: profile `demo` sets `vocab`, which the pipeline's `variables` does not declare"),
        ("profiles:\n  demo:\n    skip: [tokenize]\n" + STEPS, ":3: profile `demo`: no step named `tokenize`"),
    ],
)  # fmt: skip
def test_errors_name_the_file_line_step_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = _pipeline(tmp_path, text)
    error = _error(path)
    assert error.startswith(str(path)) and message.replace("{o}", str(tmp_path / "o")) in error, error


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"profile": "huge"}, "no profile `huge` (profiles: small, big)"),
        ({"settings": ["dedup.partitons=3"]}, "--set dedup.partitons=3: step 2 (dedup): unknown key `partitons`"),
        ({"settings": ["dedup.partitions=three"]}, "--set dedup.partitions=three: step 2 (dedup): `partitions` must be an integer"),
        ({"settings": ["tokenize.x=1"]}, "--set tokenize.x=1: no step named `tokenize` (steps: ingest, dedup)"),
        ({"settings": ["vocab=1"]}, "--set vocab=1: `vocab` is not a variable of"),
        ({"settings": ["licenses=/no/such/licenses"]}, ":15: step 1 (ingest): `inputs` reads /no/such/licenses, but it does not exist"),
        ({"settings": ["nonsense"]}, "--set nonsense: expected STEP.KEY=VALUE or VARIABLE=VALUE"),
        ({"only": ["dedup"]}, "which step 1 (ingest) makes, but this run does not run that step and it is not there yet"),
        ({"from_step": "tokenize"}, "no step `tokenize` (steps: ingest, dedup; or give a step number)"),
        ({"from_step": "ingest", "only": ["dedup"]}, "give --from or --only, not both"),
    ],
)  # fmt: skip
def test_profile_and_set_errors_say_where_the_value_came_from(tmp_path: Path, kwargs: dict, message: str) -> None:
    assert message in _error(_pipeline(tmp_path, PROFILED), **kwargs)


def test_a_plan_for_another_machine_skips_only_the_file_checks(tmp_path: Path) -> None:
    path = _pipeline(tmp_path, STEPS.replace("/usr/share/doc", "/cluster/only/data"))
    plan = plan_pipeline(load_pipeline(path), out="/cluster/out", check_paths=False)
    assert plan.steps[0].reads == (("input", "/cluster/only/data"),)
    bad = _pipeline(tmp_path, STEPS + "    partitons: 4\n")
    with pytest.raises(ConfigError, match="unknown key `partitons`"):
        plan_pipeline(load_pipeline(bad), out="/cluster/out", check_paths=False)
