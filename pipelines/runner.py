"""`corpusmill run PIPELINE --out DIR`: every step in order, each exactly as its CLI sub-command would run it.

All steps share one executor, hence one Ray: it starts when the first step maps units and
is shut down when the command ends. Every stage resumes and skips what it finished, so
re-running a pipeline after a failure continues where it stopped; ``--from`` and
``--only`` choose the steps to run, the rest of the plan is still checked.

The run is recorded in ``DIR/pipeline_run.json`` (:data:`RUN_RECORD`), rewritten after every step:
the pipeline, profile and variables, and per step its stage, options, output directory,
status, units run and wall time. ``corpusmill report DIR`` reads it to find each step's
output.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corpusmill.curation.atomic import read_json, write_json_atomic
from corpusmill.curation.command import DRIVER, StageCommand
from corpusmill.curation.dataset import STATS_FILE
from corpusmill.curation.executor import Executor
from corpusmill.curation.options import APPEND, option
from corpusmill.curation.stage import json_config
from corpusmill.pipelines.console import StepProgress, duration
from corpusmill.pipelines.pipeline import Plan, PlannedStep, load_pipeline, plan_pipeline

RUN_RECORD = "pipeline_run.json"
RUN_FORMAT = "corpusmill-run"
RUN_VERSION = 1

# Step statuses in the run record.
PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED, NOT_RUN = "pending", "running", "succeeded", "failed", "skipped", "not run"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _step_entry(item: PlannedStep, status: str) -> dict[str, Any]:
    return {
        "number": item.step.number,
        "name": item.name,
        "stage": item.command.name,
        "out": item.out,
        "options": json_config(dataclasses.asdict(item.options)),
        "reads": [path for _, path in item.reads],
        "status": status,
        "units_run": 0,
        "elapsed_s": None,
        "started_at": None,
        "finished_at": None,
    }


@dataclass
class RunRecord:
    """``DIR/pipeline_run.json``: what the pipeline is, and what each step of it did, kept current while it runs."""

    path: Path
    data: dict[str, Any]

    @classmethod
    def begin(cls, plan: Plan) -> RunRecord:
        """A record for this run; steps it does not run keep what an earlier run of the same plan recorded."""
        path = Path(plan.out) / RUN_RECORD
        previous = read_json(path) if path.exists() else {}
        earlier = {
            entry["name"]: entry
            for entry in previous.get("steps", [])
            if previous.get("pipeline") == str(plan.pipeline.path.resolve())
        }
        steps = []
        for item in plan.steps:
            entry = _step_entry(item, PENDING if item.name in plan.selected else NOT_RUN)
            kept = earlier.get(item.name)
            if item.name not in plan.selected and kept and kept.get("options") == entry["options"]:
                entry = kept
            elif item.name in plan.skipped and item.name not in plan.selected:
                entry["status"] = SKIPPED
            steps.append(entry)
        data = {
            "format": RUN_FORMAT,
            "version": RUN_VERSION,
            "pipeline": str(plan.pipeline.path.resolve()),
            "name": plan.pipeline.name,
            "profile": plan.profile,
            "out": plan.out,
            "variables": json_config(plan.variables),
            "selected": list(plan.selected),
            "status": RUNNING,
            "started_at": _now(),
            "finished_at": None,
            "elapsed_s": None,
            "steps": steps,
        }
        record = cls(path, data)
        record.save()
        return record

    def step(self, name: str) -> dict[str, Any]:
        return next(entry for entry in self.data["steps"] if entry["name"] == name)

    def save(self) -> None:
        write_json_atomic(self.path, self.data)


def read_run_record(run_dir: str | Path) -> dict[str, Any]:
    """The record of a ``corpusmill run`` (or ``corpusmill demo``) output directory."""
    from corpusmill.curation.errors import MissingFileError

    path = Path(run_dir) / RUN_RECORD
    if not path.exists():
        raise MissingFileError(f"{path} not found: {run_dir} is not the --out of `corpusmill run` (or `corpusmill demo`)")
    data = read_json(path)
    if data.get("format") != RUN_FORMAT or data.get("version") != RUN_VERSION:
        raise MissingFileError(f"{path} is not a {RUN_FORMAT} version {RUN_VERSION} record; re-run the pipeline")
    return data


@dataclass
class PipelineRun:
    """What a run did: its plan, its record, and each step's result (the stage's return value)."""

    plan: Plan
    record: dict[str, Any]
    results: dict[str, Any] = field(default_factory=dict)


def run_plan(plan: Plan, executor: Executor, overwrite: bool = False) -> PipelineRun:
    """Run the selected steps of ``plan`` with one executor, recording each in ``pipeline_run.json``."""
    from corpusmill.pipelines.cli import execute_and_render

    runs = plan.runs()
    record = RunRecord.begin(plan)
    progress = StepProgress(executor.progress, len(runs))
    outer, executor.progress = executor.progress, progress
    started = time.monotonic()
    results: dict[str, Any] = {}
    try:
        for position, item in enumerate(runs, start=1):
            entry = record.step(item.name)
            entry.update(status=RUNNING, started_at=_now(), finished_at=None, elapsed_s=None, units_run=0)
            entry["existed"] = item.out is not None and os.path.isdir(item.out) and any(os.scandir(item.out))
            record.save()
            progress.begin_step(position, item.name)
            print(f"== step {position}/{len(runs)} {item.name} ({item.command.name}) -> {item.out or '-'}", flush=True)
            step_started = time.monotonic()
            try:
                results[item.name] = execute_and_render(item.command, item.options, executor, overwrite)
            except BaseException as error:
                entry.update(status=FAILED, error=f"{type(error).__name__}: {error}".splitlines()[0])
                raise
            else:
                entry["status"] = SUCCEEDED
            finally:
                entry.update(
                    units_run=progress.units_run,
                    elapsed_s=round(time.monotonic() - step_started, 3),
                    finished_at=_now(),
                )
                record.data["elapsed_s"] = round(time.monotonic() - started, 3)
                record.save()
        record.data["status"] = SUCCEEDED
    except BaseException:
        record.data["status"] = FAILED
        raise
    finally:
        record.data["finished_at"] = _now()
        record.data["elapsed_s"] = round(time.monotonic() - started, 3)
        record.save()
        progress.end_run()
        executor.progress = outer
        print(format_run_summary(record.data), flush=True)
    return PipelineRun(plan, record.data, results)


def run_pipeline(
    path: str | Path,
    out: str,
    executor: Executor,
    overwrite: bool = False,
    *,
    profile: str | None = None,
    variables: dict[str, Any] | None = None,
    settings: tuple[str, ...] = (),
    from_step: str | None = None,
    only: tuple[str, ...] = (),
) -> PipelineRun:
    """Plan the whole pipeline (every check before anything runs), then run the chosen steps."""
    plan = plan_pipeline(
        load_pipeline(path),
        out=out,
        profile=profile,
        variables=variables,
        settings=settings,
        from_step=from_step,
        only=only,
    )
    return run_plan(plan, executor, overwrite)


def _docs(entry: dict[str, Any]) -> str:
    stats_path = Path(entry["out"]) / STATS_FILE if entry.get("out") else None
    if stats_path is None or not stats_path.exists():
        return ""
    stats = read_json(stats_path)
    return f"{stats['in']['docs']:,} -> {stats['out']['docs']:,}"


def format_run_summary(record: dict[str, Any]) -> str:
    """The table ending a run: every step, what it did, how long it took, where its output is."""
    steps = record["steps"]
    profile = f" (profile {record['profile']})" if record.get("profile") else ""
    ran = [entry for entry in steps if entry["name"] in record["selected"]]
    lines = [
        f"== pipeline {record['name']}{profile}: {len(ran)} of {len(steps)} steps run in "
        f"{duration(record['elapsed_s'] or 0)}, {record['status']}; output in {record['out']}"
    ]
    rows = [("#", "step", "stage", "status", "time", "units", "docs in -> out", "output")]
    for entry in steps:
        status = entry["status"]
        if status == SUCCEEDED and entry["name"] in record["selected"] and not entry["units_run"] and entry.get("existed"):
            status = "complete"  # finished by an earlier run: nothing left to do
        elapsed = duration(entry["elapsed_s"]) if entry.get("elapsed_s") is not None else "-"
        units = str(entry["units_run"]) if entry["name"] in record["selected"] else "-"
        rows.append(
            (str(entry["number"]), entry["name"], entry["stage"], status, elapsed, units, _docs(entry), entry["out"] or "-")
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if record["status"] == SUCCEEDED:
        lines.append(f"report: corpusmill report {record['out']} --out {Path(record['out']) / 'report.html'}")
    return "\n".join(lines)


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """`corpusmill run PIPELINE --out DIR [--profile NAME] [--from STEP | --only STEP] [--set STEP.KEY=VALUE]`."""

    pipeline: str = option(positional=True, help="pipeline YAML, e.g. pipelines/nemotron4.yaml")
    out: str = option(help="root directory of the run; {out} in the steps, and where pipeline_run.json goes")
    profile: str | None = option(None, help="a profile of the pipeline (its `profiles:`), e.g. demo or full")
    from_step: str | None = option(None, flag="--from", metavar="STEP", help="run from this step (name or number) on")
    only: tuple[str, ...] = option((), cli=APPEND, metavar="STEP", help="run only this step (repeatable)")
    settings: tuple[str, ...] = option(
        (),
        cli=APPEND,
        flag="--set",
        metavar="STEP.KEY=VALUE",
        help="override a step's key, or VARIABLE=VALUE a variable; VALUE is YAML (repeatable)",
    )


def _run(options: RunOptions, *, executor: Executor, overwrite: bool = False) -> PipelineRun:
    return run_pipeline(
        options.pipeline,
        options.out,
        executor,
        overwrite,
        profile=options.profile,
        settings=options.settings,
        from_step=options.from_step,
        only=options.only,
    )


COMMANDS = [
    StageCommand(
        ("run",), "run a pipeline YAML (pipelines/*.yaml) step by step, resuming what is done", RunOptions, _run,
        kind=DRIVER,
    )
]
