"""`corpusmill run PIPELINE.yaml`: run stages in order, each exactly as its CLI sub-command would.

A pipeline is a list of steps; a step names a stage (``ingest``, ``dedup exact``,
...) and gives that command's options as keys. ``{out}`` in any value is the
pipeline's ``--out`` directory; a value that is exactly ``{name}`` of a list
variable (passed by the caller, e.g. the demo's discovered inputs) expands to it. Every stage resumes, so re-running a pipeline
after a failure continues where it stopped.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

POSITIONAL_KEYS = ("inputs", "input")


class PipelineError(ValueError):
    """A pipeline file is malformed; the message names the step and key."""


def load_pipeline(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list) or not data["steps"]:
        raise PipelineError(f"{path}: expected a mapping with a non-empty `steps` list")
    for number, step in enumerate(data["steps"], start=1):
        if not isinstance(step, dict) or not isinstance(step.get("stage"), str):
            raise PipelineError(f"{path}: step {number} needs a `stage` (e.g. `stage: ingest`)")
    return data


def step_argv(step: dict[str, Any], variables: dict[str, Any]) -> list[str]:
    """The CLI words for one step: stage words, positionals, then --options."""
    argv = step["stage"].split()
    options = {k: _fill(v, variables) for k, v in step.items() if k != "stage"}
    for key in POSITIONAL_KEYS:
        if key in options:
            value = options.pop(key)
            argv += value if isinstance(value, list) else [value]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is False or value is None:
            continue
        else:
            argv += [flag, *(value if isinstance(value, list) else [value])]
    return argv


def _fill(value: Any, variables: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [item for v in value for item in _as_list(_fill(v, variables))]
    if not isinstance(value, str):
        return value if isinstance(value, bool) or value is None else str(value)
    for name, replacement in variables.items():
        if value == f"{{{name}}}":
            return replacement
        if isinstance(replacement, str):
            value = value.replace(f"{{{name}}}", replacement)
    return value


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def run_pipeline(path: Path, out: str, overwrite: bool = False, variables: dict[str, Any] | None = None) -> None:
    from corpusmill.pipelines.cli import build_parser

    parser = build_parser()
    pipeline = load_pipeline(path)
    for number, step in enumerate(pipeline["steps"], start=1):
        argv = step_argv(step, {"out": out, **(variables or {})}) + (["--overwrite"] if overwrite else [])
        print(f"== step {number}/{len(pipeline['steps'])}: corpusmill {' '.join(argv)}", flush=True)
        args = parser.parse_args(argv)
        args.handler(args)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline", type=Path, help="pipeline YAML, e.g. pipelines/demo.yaml")
    parser.add_argument("--out", required=True, help="root directory; replaces {out} in the steps")


def main(args: argparse.Namespace) -> None:
    run_pipeline(args.pipeline, args.out, args.overwrite)
