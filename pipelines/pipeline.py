"""`corpusmill run PIPELINE.yaml --out DIR`: run stages in order, each exactly as its CLI sub-command would.

A pipeline is a list of steps; a step names a stage (``ingest``, ``dedup exact``, ...)
and gives that stage's options as keys: the same names as its options declaration,
hence as its flags (``text_field`` for ``--text-field``). ``{out}`` in any value is the
pipeline's ``--out`` directory; a value that is exactly ``{name}`` of a list variable
(passed by the caller, e.g. the demo's discovered inputs) expands to it. Every step is
validated before the first one runs, with errors that name the file, line, step and
key. Every stage resumes, so re-running a pipeline after a failure continues where it
stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from corpusmill.curation.command import StageCommand
from corpusmill.curation.errors import ConfigError
from corpusmill.curation.executor import Executor
from corpusmill.curation.options import from_mapping, option

STAGE_KEY = "stage"


class PipelineError(ConfigError):
    """A pipeline file is malformed; the message names the file, line, step and key."""


@dataclass(frozen=True)
class Step:
    """One step as written: its stage, its keys, and where each was written."""

    number: int
    stage: str
    values: dict[str, Any]
    line: int
    key_lines: dict[str, int] = field(default_factory=dict)

    def where(self, path: Path, key: str | None = None) -> str:
        line = self.key_lines.get(key, self.line) if key is not None else self.line
        return f"{path}:{line}: step {self.number} ({self.stage})"


@dataclass(frozen=True)
class Pipeline:
    path: Path
    name: str
    steps: list[Step]


def load_pipeline(path: Path) -> Pipeline:
    """Read and check a pipeline's structure (safe loader: no YAML tag builds objects)."""
    path = Path(path)
    try:
        root = yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise PipelineError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list) or not data["steps"]:
        raise PipelineError(f"{path}: expected a mapping with a non-empty `steps` list")
    step_nodes = next(value for key, value in root.value if key.value == "steps").value
    steps = []
    for number, (values, node) in enumerate(zip(data["steps"], step_nodes), start=1):
        line = node.start_mark.line + 1
        if not isinstance(values, dict) or not isinstance(values.get(STAGE_KEY), str):
            raise PipelineError(f"{path}:{line}: step {number} needs a `stage` (e.g. `stage: ingest`)")
        key_lines = {key.value: key.start_mark.line + 1 for key, _ in node.value}
        stage = values[STAGE_KEY]
        options = {key: value for key, value in values.items() if key != STAGE_KEY}
        steps.append(Step(number, stage, options, line, key_lines))
    return Pipeline(path, str(data.get("name", path.stem)), steps)


def fill_variables(value: Any, variables: dict[str, Any]) -> Any:
    """``{name}`` replaced in every string; a string that is exactly ``{name}`` of a list becomes the list."""
    if isinstance(value, list):
        return [item for v in value for item in _as_list(fill_variables(v, variables))]
    if not isinstance(value, str):
        return value
    for name, replacement in variables.items():
        if value == f"{{{name}}}":
            return replacement
        if isinstance(replacement, str):
            value = value.replace(f"{{{name}}}", replacement)
    return value


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class PlannedStep:
    step: Step
    command: StageCommand
    options: Any


def plan_pipeline(pipeline: Pipeline, variables: dict[str, Any]) -> list[PlannedStep]:
    """Every step's command and typed options, all checked before anything runs."""
    from corpusmill.pipelines.cli import find_command

    planned = []
    for step in pipeline.steps:
        command = find_command(step.stage)
        if command is None:
            raise PipelineError(f"{step.where(pipeline.path, STAGE_KEY)}: unknown stage `{step.stage}`")
        if command.words[0] in ("run", "demo"):
            raise PipelineError(f"{step.where(pipeline.path, STAGE_KEY)}: a pipeline step cannot run `{step.stage}`")
        values = {key: fill_variables(value, variables) for key, value in step.values.items()}
        options = from_mapping(command.options, values, lambda key, step=step: step.where(pipeline.path, key))
        planned.append(PlannedStep(step, command, options))
    return planned


def run_pipeline(
    path: Path,
    out: str,
    executor: Executor,
    overwrite: bool = False,
    variables: dict[str, Any] | None = None,
) -> list[Any]:
    """Run every step with one executor; return each step's result."""
    from corpusmill.pipelines.cli import execute_and_render

    pipeline = load_pipeline(path)
    planned = plan_pipeline(pipeline, {"out": out, **(variables or {})})
    results = []
    for item in planned:
        target = getattr(item.options, "out", "")
        print(f"== step {item.step.number}/{len(planned)}: {item.command.name} -> {target}", flush=True)
        results.append(execute_and_render(item.command, item.options, executor, overwrite))
    return results


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """`corpusmill run PIPELINE --out DIR`."""

    pipeline: str = option(positional=True, help="pipeline YAML, e.g. pipelines/demo.yaml")
    out: str = option(help="root directory; replaces {out} in the steps")


def _run(options: RunOptions, *, executor: Executor, overwrite: bool = False) -> None:
    run_pipeline(Path(options.pipeline), options.out, executor, overwrite)


COMMANDS = [StageCommand(("run",), "run a pipeline YAML (pipelines/*.yaml) step by step", RunOptions, _run)]
