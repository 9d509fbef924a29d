"""Pipeline YAML: steps, names, variables and profiles, all checked before the first step runs.

A pipeline is a list of steps. A step names a stage (``ingest``, ``dedup exact``, ...) and
gives that stage's options as keys: the same names as its options declaration, hence as
its flags (``text_field`` for ``--text-field``)::

    name: nemotron4
    variables:                 # {name} in any value; null means "must be given"
      inputs: null
      vocab_size: 256000
    profiles:                  # --profile NAME: overrides, in the same words as the steps
      demo:
        variables: {vocab_size: 8000}
        steps:
          tokenizer_train: {max_sentences: 200000}
        skip: [train]
    steps:
      - stage: ingest
        inputs: "{inputs}"
        out: "{out}/ingested"
      - name: tokenizer_train  # the default name: the stage's words joined by `_`
        stage: tokenizer train
        ...

Values, lowest to highest precedence: the step's own keys, the profile's ``steps.NAME``,
``--set NAME.KEY=VALUE``. Variables: the pipeline's ``variables``, the profile's, the
caller's (the demo's discovered inputs), ``--set NAME=VALUE``. Built-in variables:
``{out}`` (the run's ``--out``) and ``{here}`` (the pipeline file's directory). A value that
is exactly ``{name}`` becomes the variable's value with its type (a list, a number); inside
a longer string the variable is formatted in.

Before anything runs, every step is planned: an unknown stage, step, profile or variable,
an unknown or mistyped key, a path that does not exist, and a step reading an output that
no earlier step makes are each an error naming the file, line and key (or the ``--set``
argument) it came from. Loading uses YAML's safe loader: no tag builds an object.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from corpusmill.curation.command import StageCommand
from corpusmill.curation.config_yaml import load_config_yaml, read_config_text
from corpusmill.curation.errors import ConfigError
from corpusmill.curation.options import from_mapping

STAGE_KEY = "stage"
NAME_KEY = "name"
OUT_KEY = "out"
BUILTIN_VARIABLES = ("out", "here")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
_REFERENCE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TOP_KEYS = {"name", "description", "variables", "profiles", "steps"}
_PROFILE_KEYS = {"description", "variables", "steps", "skip"}


class PipelineError(ConfigError):
    """A pipeline file, profile or ``--set`` is wrong; the message names the file and line, or the argument."""


@dataclass(frozen=True)
class Step:
    """One step as written: its number, name, stage, keys, and the line of each key."""

    number: int
    name: str
    stage: str
    values: dict[str, Any]
    line: int
    key_lines: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Profile:
    """``profiles.NAME``: variable values, per-step key overrides (with their lines) and steps to skip."""

    name: str
    variables: dict[str, Any]
    steps: dict[str, dict[str, Any]]
    step_lines: dict[str, int]
    key_lines: dict[str, dict[str, int]]
    skip: tuple[str, ...]


@dataclass(frozen=True)
class Pipeline:
    path: Path
    name: str
    steps: list[Step]
    variables: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, Profile] = field(default_factory=dict)

    def at(self, line: int) -> str:
        return f"{self.path}:{line}"

    def step(self, reference: str) -> Step:
        """A step by name or number (``--from``, ``--only``)."""
        for step in self.steps:
            if reference in (step.name, str(step.number)):
                return step
        names = ", ".join(step.name for step in self.steps)
        raise PipelineError(f"{self.path}: no step `{reference}` (steps: {names}; or give a step number)")


# --- loading ------------------------------------------------------------------------------------


def _entries(node: yaml.Node) -> Iterator[tuple[str, yaml.Node, int]]:
    """A mapping node's (key, value node, line) entries."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield str(key.value), value, key.start_mark.line + 1


def _child(node: yaml.Node, key: str) -> yaml.Node | None:
    return next((value for name, value, _ in _entries(node) if name == key), None)


def _lines(node: yaml.Node | None) -> dict[str, int]:
    return {} if node is None else {name: line for name, _, line in _entries(node)}


def _line(node: yaml.Node | None, default: int = 1) -> int:
    return default if node is None else node.start_mark.line + 1


def _kind(data: Any) -> str:
    return "an empty file" if data is None else f"a {type(data).__name__}"


def default_step_names(stages: Sequence[str]) -> list[str]:
    """``dedup exact`` -> ``dedup_exact``; a stage used twice gets ``_1``, ``_2``, ... on each use."""
    bases = [stage.replace(" ", "_").replace("-", "_") for stage in stages]
    seen: dict[str, int] = {}
    names = []
    for base in bases:
        seen[base] = seen.get(base, 0) + 1
        names.append(f"{base}_{seen[base]}" if bases.count(base) > 1 else base)
    return names


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and check a pipeline's structure (YAML's safe loader: no tag builds objects)."""
    path = Path(path)
    text = read_config_text(path, "pipeline", PipelineError)
    data, root = load_config_yaml(text, path, error=PipelineError)
    if not isinstance(data, dict):
        raise PipelineError(f"{path}: expected a mapping with a non-empty `steps` list, got {_kind(data)}")
    if "steps" not in data:
        raise PipelineError(f"{path}: missing `steps` (a list of steps, each `- stage: NAME` and its keys)")
    if not isinstance(data["steps"], list) or not data["steps"]:
        raise PipelineError(
            f"{path}:{_line(_child(root, 'steps'))}: `steps` must be a non-empty list (each `- stage: NAME` and its keys)"
        )
    for key, _, line in _entries(root):
        if key not in _TOP_KEYS:
            raise PipelineError(f"{path}:{line}: unknown top-level key `{key}` (a pipeline has: {', '.join(sorted(_TOP_KEYS))})")
    steps = _load_steps(path, data["steps"], _child(root, "steps"))
    variables, _ = _load_variables(path, data.get("variables"), _child(root, "variables"))
    pipeline = Pipeline(path, str(data.get("name", path.stem)), steps, variables)
    profiles = _load_profiles(pipeline, data.get("profiles"), _child(root, "profiles"))
    return Pipeline(path, pipeline.name, steps, variables, profiles)


def _load_steps(path: Path, items: list[Any], node: yaml.Node) -> list[Step]:
    nodes = node.value
    stages = []
    for number, (values, item) in enumerate(zip(items, nodes), start=1):
        if not isinstance(values, dict) or not isinstance(values.get(STAGE_KEY), str):
            raise PipelineError(f"{path}:{_line(item)}: step {number} needs a `stage` (e.g. `stage: ingest`)")
        stages.append(values[STAGE_KEY])
    defaults = default_step_names(stages)
    steps: list[Step] = []
    for number, (values, item, default) in enumerate(zip(items, nodes, defaults), start=1):
        key_lines = _lines(item)
        name = values.get(NAME_KEY, default)
        where = f"{path}:{key_lines.get(NAME_KEY, _line(item))}: step {number}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise PipelineError(f"{where}: `name` must be a word of letters, digits, `_` or `-`, got {name!r}")
        if name.isdigit() or any(step.name == name for step in steps):
            raise PipelineError(f"{where}: another step is already named `{name}`; give this one its own `name:`")
        options = {key: value for key, value in values.items() if key not in (STAGE_KEY, NAME_KEY)}
        steps.append(Step(number, name, values[STAGE_KEY], options, _line(item), key_lines))
    return steps


def _load_variables(path: Path, data: Any, node: yaml.Node | None) -> tuple[dict[str, Any], dict[str, int]]:
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise PipelineError(f"{path}:{_line(node)}: `variables` must be a mapping of name: value")
    lines = _lines(node)
    for name in data:
        if not isinstance(name, str) or not _REFERENCE.fullmatch(f"{{{name}}}"):
            raise PipelineError(f"{path}:{lines.get(str(name), _line(node))}: variable `{name}` must be a word")
        if name in BUILTIN_VARIABLES:
            raise PipelineError(f"{path}:{lines[name]}: `{name}` is a built-in variable ({{out}} is --out, {{here}} the pipeline's folder)")
    return dict(data), lines


def _load_profiles(pipeline: Pipeline, data: Any, node: yaml.Node | None) -> dict[str, Profile]:
    path = pipeline.path
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PipelineError(f"{path}:{_line(node)}: `profiles` must map a profile's name to its overrides")
    profiles = {}
    for name, profile_node, line in _entries(node):
        body = data[name] if data[name] is not None else {}
        if not isinstance(body, dict):
            raise PipelineError(f"{path}:{line}: profile `{name}` must be a mapping (variables, steps, skip)")
        for key, _, key_line in _entries(profile_node):
            if key not in _PROFILE_KEYS:
                raise PipelineError(f"{path}:{key_line}: profile `{name}`: unknown key `{key}` (a profile has: {', '.join(sorted(_PROFILE_KEYS))})")
        variables, variable_lines = _load_variables(path, body.get("variables"), _child(profile_node, "variables"))
        for variable, variable_line in variable_lines.items():
            if variable not in pipeline.variables:
                raise PipelineError(f"{path}:{variable_line}: profile `{name}` sets `{variable}`, which the pipeline's `variables` does not declare")
        steps_node = _child(profile_node, "steps")
        steps = body.get("steps") or {}
        if not isinstance(steps, dict):
            raise PipelineError(f"{path}:{_line(steps_node)}: profile `{name}`: `steps` must map step names to keys")
        key_lines = {}
        for step_name, step_node, step_line in _entries(steps_node):
            where = f"{path}:{step_line}: profile `{name}`"
            if not any(step.name == step_name for step in pipeline.steps):
                _no_step(where, step_name, pipeline)
            if not isinstance(steps[step_name], dict):
                raise PipelineError(f"{where}: `steps.{step_name}` must be a mapping of the stage's keys")
            if STAGE_KEY in steps[step_name] or NAME_KEY in steps[step_name]:
                raise PipelineError(f"{where}: a profile overrides a step's keys, not its `stage` or `name`")
            key_lines[step_name] = _lines(step_node)
        skip_node = _child(profile_node, "skip")
        skip = body.get("skip") or []
        if not isinstance(skip, list) or not all(isinstance(s, str) for s in skip):
            raise PipelineError(f"{path}:{_line(skip_node)}: profile `{name}`: `skip` must be a list of step names")
        for skipped in skip:
            if not any(step.name == skipped for step in pipeline.steps):
                _no_step(f"{path}:{_line(skip_node)}: profile `{name}`", skipped, pipeline)
        profiles[name] = Profile(
            name, variables, steps, _lines(steps_node), key_lines, tuple(skip)
        )
    return profiles


def _no_step(where: str, name: str, pipeline: Pipeline) -> None:
    names = ", ".join(step.name for step in pipeline.steps)
    raise PipelineError(f"{where}: no step named `{name}` (steps: {names})")


# --- overrides: --set ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One ``--set TARGET=VALUE``: a step key (``tokenizer_train.vocab_size``) or a variable (``tokens``)."""

    text: str
    step: str | None
    key: str
    value: Any


def parse_setting(text: str) -> Setting:
    """``NAME.KEY=VALUE`` or ``VARIABLE=VALUE``; VALUE is read as YAML (``8000`` an integer, ``[a, b]`` a list)."""
    target, sep, raw = text.partition("=")
    if not sep or not target:
        raise PipelineError(f"--set {text}: expected STEP.KEY=VALUE or VARIABLE=VALUE")
    try:
        value = load_config_yaml(raw, f"--set {text}", error=PipelineError)[0] if raw.strip() else ""
    except PipelineError:  # not YAML (or absurd YAML): the text itself
        value = raw
    step, dot, key = target.partition(".")
    if not dot:
        return Setting(text, None, target, value)
    if not step or not key:
        raise PipelineError(f"--set {text}: expected STEP.KEY=VALUE")
    return Setting(text, step, key, value)


# --- planning ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedStep:
    """A step ready to run: its command, typed options, where each key came from, and the paths it reads."""

    step: Step
    command: StageCommand
    options: Any
    origins: dict[str, str]
    reads: tuple[tuple[str, str], ...] = ()  # (key, absolute path)

    @property
    def name(self) -> str:
        return self.step.name

    @property
    def out(self) -> str | None:
        out = getattr(self.options, OUT_KEY, None)
        return os.path.abspath(out) if isinstance(out, str) else None


@dataclass(frozen=True)
class Plan:
    """Every step of a pipeline under one profile, planned; ``selected`` are the names this run runs."""

    pipeline: Pipeline
    profile: str | None
    out: str
    variables: dict[str, Any]
    steps: list[PlannedStep]
    selected: tuple[str, ...]
    skipped: tuple[str, ...] = ()

    def runs(self) -> list[PlannedStep]:
        return [item for item in self.steps if item.name in self.selected]


def _where(origin: str, step: Step) -> str:
    return f"{origin}: step {step.number} ({step.name})"


def _resolved_variables(
    pipeline: Pipeline, profile: Profile | None, out: str, variables: Mapping[str, Any], settings: list[Setting]
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "out": os.path.abspath(out),
        "here": str(pipeline.path.resolve().parent),
        **pipeline.variables,
        **(profile.variables if profile else {}),
        **variables,
    }
    for setting in settings:
        if setting.step is not None:
            continue
        if setting.key not in values or setting.key in BUILTIN_VARIABLES:
            declared = ", ".join(sorted(set(values) - set(BUILTIN_VARIABLES))) or "none"
            steps = ", ".join(step.name for step in pipeline.steps)
            raise PipelineError(
                f"--set {setting.text}: `{setting.key}` is not a variable of {pipeline.path} (variables: {declared}); "
                f"a step's key is set as STEP.KEY=VALUE (steps: {steps})"
            )
        values[setting.key] = setting.value
    return values


def fill_variables(value: Any, variables: Mapping[str, Any], problem: Any = None) -> Any:
    """``{name}`` replaced in every string; a string that is exactly ``{name}`` becomes the value itself.

    A list value spliced into a list flattens (``inputs: ["{inputs}", extra.jsonl]``).
    ``problem(text)`` builds the error for an unknown or unset variable.
    """
    problem = problem or (lambda text: PipelineError(text))
    if isinstance(value, list):
        filled = []
        for item in value:
            result = fill_variables(item, variables, problem)
            filled += result if isinstance(result, list) and isinstance(item, str) else [result]
        return filled
    if not isinstance(value, str):
        return value

    def lookup(name: str) -> Any:
        if name not in variables:
            known = ", ".join(sorted(variables))
            raise problem(f"uses {{{name}}}, which is not a variable (variables: {known})")
        if variables[name] is None:
            raise problem(f"uses {{{name}}}, which has no value: give it with --set {name}=VALUE or in a profile")
        return variables[name]

    whole = _REFERENCE.fullmatch(value)
    if whole:
        return lookup(whole.group(1))

    def format_one(match: re.Match[str]) -> str:
        replacement = lookup(match.group(1))
        if isinstance(replacement, (list, dict)):
            raise problem(f"puts the list {{{match.group(1)}}} inside a longer string; use it as the whole value")
        return str(replacement)

    return _REFERENCE.sub(format_one, value)


def _step_values(
    pipeline: Pipeline, profile: Profile | None, step: Step, settings: list[Setting]
) -> tuple[dict[str, Any], dict[str, str]]:
    values = dict(step.values)
    origins = {key: pipeline.at(step.key_lines.get(key, step.line)) for key in values}
    if profile is not None and step.name in profile.steps:
        for key, value in profile.steps[step.name].items():
            values[key] = value
            origins[key] = pipeline.at(profile.key_lines[step.name].get(key, profile.step_lines[step.name]))
    for setting in settings:
        if setting.step == step.name:
            values[setting.key], origins[setting.key] = setting.value, f"--set {setting.text}"
    return values, origins


def plan_pipeline(
    pipeline: Pipeline,
    *,
    out: str,
    profile: str | None = None,
    variables: Mapping[str, Any] | None = None,
    settings: Sequence[str] = (),
    from_step: str | None = None,
    only: Sequence[str] = (),
    check_paths: bool = True,
) -> Plan:
    """Every step's command and typed options, and the paths between steps, checked before anything runs.

    The other profiles are checked too (their keys and types, not their files), so a typo
    in ``full`` shows up in a ``demo`` run. ``check_paths=False`` skips the checks that need
    this machine's files (inputs exist), for a plan that runs elsewhere (``corpusmill
    submit``); the steps' reading order is always checked.
    """
    if profile is not None and profile not in pipeline.profiles:
        known = ", ".join(pipeline.profiles) or "none: the pipeline has no `profiles`"
        raise PipelineError(f"{pipeline.path}: no profile `{profile}` (profiles: {known})")
    parsed = [parse_setting(text) for text in settings]
    for setting in parsed:
        if setting.step is not None and not any(step.name == setting.step for step in pipeline.steps):
            _no_step(f"--set {setting.text}", setting.step, pipeline)
    for other in pipeline.profiles:
        if other != profile:
            _plan_steps(pipeline, pipeline.profiles[other], out, variables or {}, parsed)
    chosen = pipeline.profiles.get(profile) if profile else None
    values, planned = _plan_steps(pipeline, chosen, out, variables or {}, parsed)
    names = [step.name for step in pipeline.steps]
    skipped = chosen.skip if chosen else ()
    selected = _selection(pipeline, names, skipped, from_step, only)
    planned = _check_paths(pipeline, planned, values["out"], set(selected), check_paths)
    return Plan(pipeline, profile, values["out"], values, planned, tuple(selected), tuple(skipped))


def _plan_steps(
    pipeline: Pipeline, chosen: Profile | None, out: str, variables: Mapping[str, Any], parsed: list[Setting]
) -> tuple[dict[str, Any], list[PlannedStep]]:
    """The variables and every step's typed options under one profile (or none)."""
    from corpusmill.pipelines.cli import find_command

    values = _resolved_variables(pipeline, chosen, out, variables, parsed)
    planned = []
    for step in pipeline.steps:
        command = find_command(step.stage)
        stage_at = pipeline.at(step.key_lines.get(STAGE_KEY, step.line))
        if command is None:
            raise PipelineError(f"{_where(stage_at, step)}: unknown stage `{step.stage}`")
        if not command.pipeline_step:
            raise PipelineError(f"{_where(stage_at, step)}: a pipeline step cannot run `{step.stage}`")
        raw, origins = _step_values(pipeline, chosen, step, parsed)
        filled = {}
        for key, value in raw.items():
            if isinstance(value, dict) and len(value) == 1 and None in value.values():
                name = next(iter(value))
                raise PipelineError(
                    f"{_where(origins[key], step)}: `{key}` is the YAML mapping {{{name}: null}}; "
                    f'to use the variable, quote it: "{{{name}}}"'
                )

            where = _where(origins[key], step)
            filled[key] = fill_variables(value, values, lambda text, w=where, k=key: PipelineError(f"{w}: `{k}` {text}"))
        step_where = pipeline.at(step.line)

        def locate(key: str | None, origins: dict[str, str] = origins, step: Step = step, default: str = step_where) -> str:
            return _where(origins.get(key, default) if key else default, step)

        options = from_mapping(command.options, filled, locate)
        planned.append(PlannedStep(step, command, options, origins))
    return values, planned


def _selection(
    pipeline: Pipeline, names: list[str], skipped: Sequence[str], from_step: str | None, only: Sequence[str]
) -> list[str]:
    if from_step is not None and only:
        raise PipelineError("give --from or --only, not both")
    if only:
        chosen = {pipeline.step(reference).name for reference in only}
        return [name for name in names if name in chosen]
    first = pipeline.step(from_step).number if from_step is not None else 1
    return [name for name in names[first - 1 :] if name not in skipped]


# --- paths between steps -------------------------------------------------------------------------


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def _path_texts(value: Any) -> Iterator[str]:
    """The strings of an option value that may name files: every string, and the PATH of PATH=SOURCE."""
    for item in value if isinstance(value, (tuple, list)) else (value,):
        if isinstance(item, str) and item and "://" not in item and not any(c.isspace() for c in item):
            yield item.partition("=")[0] if "=" in item else item


def _exists(path: str) -> bool:
    return bool(glob.glob(path)) if glob.has_magic(path) else os.path.exists(path)


def _check_paths(
    pipeline: Pipeline, planned: list[PlannedStep], run_out: str, selected: set[str], check_paths: bool
) -> list[PlannedStep]:
    """Each step reads what an earlier step writes, or what exists; record what each step reads."""
    writers: dict[str, PlannedStep] = {}
    for item in planned:
        if item.out is None:
            continue
        if item.out in writers:
            other = writers[item.out]
            raise PipelineError(
                f"{_where(item.origins.get(OUT_KEY, pipeline.at(item.step.line)), item.step)}: writes {item.out}, "
                f"as step {other.step.number} ({other.name}) does; give each step its own `out`"
            )
        writers[item.out] = item
    result = []
    for position, item in enumerate(planned):
        earlier = {p.out: p for p in planned[:position] if p.out is not None}
        later = {p.out: p for p in planned[position + 1 :] if p.out is not None}
        reads = []
        for spec in dataclasses.fields(item.options):
            key, value = spec.name, getattr(item.options, spec.name)
            if key == OUT_KEY:
                continue
            for text in _path_texts(value):
                path = os.path.abspath(os.path.expanduser(text))
                looks_like_path = "/" in text or text.startswith("~") or any(_inside(path, o) for o in writers)
                if not looks_like_path:
                    continue
                where = f"{_where(item.origins.get(key, pipeline.at(item.step.line)), item.step)}: `{key}`"
                producer = next((p for o, p in earlier.items() if _inside(path, o)), None)
                if producer is not None:
                    reads.append((key, path))
                    if check_paths and producer.name not in selected and item.name in selected and not _exists(path):
                        raise PipelineError(
                            f"{where} reads {path}, which step {producer.step.number} ({producer.name}) makes, but this "
                            "run does not run that step and it is not there yet: include the step (--from / --only)"
                        )
                    continue
                successor = next((p for o, p in later.items() if _inside(path, o)), None)
                if successor is not None:
                    raise PipelineError(
                        f"{where} reads {path}, which step {successor.step.number} ({successor.name}) makes only "
                        "later: move this step after it"
                    )
                if check_paths and not _exists(path):
                    under_out = _inside(path, run_out)
                    made = ", ".join(p.out for p in earlier.values()) or "nothing"
                    reason = f"no earlier step makes it (earlier steps write: {made})" if under_out else "it does not exist"
                    raise PipelineError(f"{where} reads {path}, but {reason}")
                reads.append((key, path))
        result.append(PlannedStep(item.step, item.command, item.options, item.origins, tuple(reads)))
    return result
