"""`corpusmill run`: one Ray for every step, shut down at the end; a re-run resumes from what is complete;
--only re-runs one step; the run is recorded in pipeline_run.json and summarised."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from corpusmill.curation.dataset import Dataset

LICENSES = Path("/usr/share/common-licenses")
PIPELINE = """\
name: licenses
variables:
  licenses: {licenses}
profiles:
  two:
    steps:
      dedup_exact: {{partitions: 2}}
steps:
  - stage: ingest
    inputs: ["{{licenses}}=licenses", "{{licenses}}=mirror"]  # the same texts twice: exact duplicates
    out: "{{out}}/ingested"
  - stage: dedup exact
    input: "{{out}}/ingested"
    out: "{{out}}/dedup_exact"
"""

# Runs the CLI in a fresh interpreter and then says whether Ray is still initialised there.
RUN_AND_PROBE = (
    "import sys, ray; from corpusmill.pipelines.cli import main; rc = main(sys.argv[1:]); "
    "print('ray initialised after the command:', ray.is_initialized()); sys.exit(rc)"
)


def write_pipeline(directory: Path) -> Path:
    path = directory / "licenses.yaml"
    path.write_text(PIPELINE.format(licenses=LICENSES))
    return path


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}  # an embedded Ray on this machine only
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, "-c", RUN_AND_PROBE, "run", *args, "--num-cpus", "2"],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_a_pipeline_starts_ray_once_resumes_and_records_every_step(tmp_path: Path) -> None:
    pipeline, out = write_pipeline(tmp_path), tmp_path / "run"
    first = _run(str(pipeline), "--out", str(out), "--profile", "two", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stderr.count("ray: started an embedded Ray") == 1, first.stderr  # two steps, one Ray
    assert "ray initialised after the command: False" in first.stdout
    assert "step 1/2 ingest [ingest/read]" in first.stderr and "step 2/2 dedup_exact [dedup_exact/filter]" in first.stderr
    record = json.loads((out / "pipeline_run.json").read_text())
    assert record["status"] == "succeeded" and record["profile"] == "two"
    assert [(s["name"], s["status"]) for s in record["steps"]] == [("ingest", "succeeded"), ("dedup_exact", "succeeded")]
    assert all(step["units_run"] > 0 for step in record["steps"])
    assert record["steps"][1]["options"]["partitions"] == 2
    assert record["steps"][1]["reads"] == [str(out / "ingested")]
    stats = json.loads((out / "dedup_exact" / "stats.json").read_text())
    assert stats["removed"]["exact_duplicate"]["docs"] == stats["in"]["docs"] // 2 > 0  # the mirror's copies
    assert "== pipeline licenses (profile two): 2 of 2 steps run" in first.stdout
    assert f"{stats['in']['docs']:,} -> {stats['out']['docs']:,}" in first.stdout
    kept = Dataset.open(out / "dedup_exact").read_table().sort_by("id").to_pylist()

    again = _run(str(pipeline), "--out", str(out), "--profile", "two", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "ray: started" not in again.stderr  # nothing left to do: Ray is never started
    assert again.stdout.count(" complete ") == 2, again.stdout
    assert all(s["units_run"] == 0 for s in json.loads((out / "pipeline_run.json").read_text())["steps"])

    only = _run(str(pipeline), "--out", str(out), "--profile", "two", "--only", "dedup_exact", "--overwrite", cwd=tmp_path)
    assert only.returncode == 0, only.stderr[-3000:]
    assert "== step 1/1 dedup_exact" in only.stdout and "ingest/read" not in only.stderr
    record = json.loads((out / "pipeline_run.json").read_text())
    assert record["selected"] == ["dedup_exact"]
    assert record["steps"][0]["status"] == "succeeded"  # kept from the first run
    assert record["steps"][1]["units_run"] > 0
    assert Dataset.open(out / "dedup_exact").read_table().sort_by("id").to_pylist() == kept


def test_a_bad_pipeline_fails_before_anything_runs(tmp_path: Path) -> None:
    pipeline, out = write_pipeline(tmp_path), tmp_path / "run"
    result = _run(str(pipeline), "--out", str(out), "--set", "dedup_exact.partitons=2", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "corpusmill: error: --set dedup_exact.partitons=2: step 2 (dedup_exact): unknown key `partitons` "
        "(this stage takes: input, out, partitions)"
    )
    assert not out.exists()


def test_progress_lines_say_where_the_run_is_and_what_is_left() -> None:
    import io

    from corpusmill.pipelines.console import ConsoleProgress, StepProgress

    stream = io.StringIO()
    console = ConsoleProgress(stream, interval_s=0.0)
    progress = StepProgress(console, total_steps=3)
    progress.begin_step(2, "dedup_exact")
    progress.phase_started("dedup_exact/filter", total=4, done=1)  # one unit done by an earlier run
    progress.unit_finished("dedup_exact/filter", {"stats": {"in": {"docs": 10, "bytes": 2_000_000}}})
    progress.note("a note")
    progress.end_run()
    first, note = stream.getvalue().splitlines()
    assert first.startswith("step 2/3 dedup_exact [dedup_exact/filter] 2/4 units, 10 docs, 2.0 MB")
    assert " left | run " in first  # two units to go at the rate of the one this run did
    assert note == "step 2/3 dedup_exact: a note"
    assert progress.units_run == 1 and console.context == ""


def test_the_shipped_recipe_is_checked_in_every_profile_before_anything_runs(tmp_path: Path) -> None:
    """A typo in the `full` profile of pipelines/nemotron4.yaml stops a `demo` run, naming file, line and key."""
    import pytest

    from corpusmill.curation.errors import ConfigError
    from corpusmill.pipelines.demo import DEMO_PIPELINE, DEMO_PROFILE
    from corpusmill.pipelines.pipeline import load_pipeline, plan_pipeline

    inputs = {"inputs": [f"{LICENSES}=licenses"]}
    plan = plan_pipeline(load_pipeline(DEMO_PIPELINE), out=str(tmp_path / "o"), profile=DEMO_PROFILE, variables=inputs)
    assert [item.name for item in plan.runs()][-3:] == ["blend_pretrain", "blend_continued", "train"]
    full = plan_pipeline(load_pipeline(DEMO_PIPELINE), out=str(tmp_path / "o"), profile="full", variables=inputs)
    assert "train" not in full.selected and full.steps[-1].options.preset == "15b"  # training is optional there

    text = DEMO_PIPELINE.read_text().replace("    skip: [train]", "    skip: [train]\n    steps:\n      tokenize: {split_by: 7}")
    broken = tmp_path / "nemotron4.yaml"
    broken.write_text(text)
    line = text.splitlines().index("      tokenize: {split_by: 7}") + 1
    with pytest.raises(ConfigError) as error:
        plan_pipeline(load_pipeline(broken), out=str(tmp_path / "o"), profile=DEMO_PROFILE, variables=inputs, check_paths=False)
    assert str(error.value).startswith(f"{broken}:{line}: step 12 (tokenize): `split_by`"), str(error.value)
