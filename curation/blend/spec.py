"""Blend spec files (``blend_specs/*.yaml``): schema, validation with line numbers, and the parsed form.

A spec names phases (pretraining, continued training, ...); each phase splits its tokens
between groups by weight, and each group selects tokenized prefixes by their keys
(category, language, source, any --split-by column) and shares its weight among them
by tokens, by a temperature over a key, or by explicit per-value weights. Per-source
caps bound how often a source may be repeated. ``blend_specs/README.md`` documents it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import yaml

from corpusmill.curation.classify.labels import CATEGORY
from corpusmill.curation.config_yaml import load_config_yaml, read_config_text
from corpusmill.curation.errors import CorpusmillError
from corpusmill.curation.select.expression import (
    ExpressionError,
    Predicate,
    column_names,
    compile_predicate,
    is_column_name,
    parse,
    quoted,
    string_columns,
)

DEFAULT_SEQ_LENGTH = 4096
WITHIN_MODES = ("tokens", "temperature", "explicit")
_DEFAULT_OVER = {"temperature": "language", "explicit": "source"}
# The keys each within-mode reads; all but `over` are required.
_MODE_KEYS = {
    "tokens": frozenset(),
    "temperature": frozenset({"over", "temperature"}),
    "explicit": frozenset({"over", "weights"}),
}
TOP_KEYS = ("name", "description", "seq_length", "max_epochs", "phases")
PHASE_KEYS = ("description", "tokens", "groups")
GROUP_KEYS = ("description", "weight", "select", "exclude", "where", "within", "over", "temperature", "weights")
CAP_KEYS = ("default", "sources")
_SUFFIXES = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}
_TOKEN_COUNT = re.compile(r"^\s*([0-9][0-9_]*(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)\s*([KMBGT]?)\s*$", re.IGNORECASE)


class BlendSpecError(CorpusmillError, ValueError):
    """A spec file is invalid; the message names the file, line and key, and what is expected."""


def spelled(value: Any) -> str:
    """A value as a person wrote it: YAML's ``.nan`` / ``.inf`` for the floats Python calls nan / inf."""
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else ("-.inf" if value < 0 else ".inf")
    return repr(value)


def parse_token_count(value: Any) -> float:
    """``8e12``, ``8T``, ``300B``, ``1_000_000`` or a number: a positive, finite token count.

    Infinity (``.inf``, or ``1e400``, which overflows to it) would train forever and NaN
    compares false with everything, so both are refused here rather than met downstream."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        match = _TOKEN_COUNT.match(str(value))
        if match is None:
            raise ValueError(f"{value!r} is not a token count (e.g. 8e12, 8T, 300B)")
        number = float(match.group(1).replace("_", "")) * _SUFFIXES[match.group(2).upper()]
    if not math.isfinite(number):
        raise ValueError(f"{spelled(value)}: a token count must be a finite number")
    if not number > 0:
        raise ValueError(f"{spelled(value)}: a token count must be positive")
    return number


@dataclass(frozen=True)
class Selector:
    """Which prefixes a group takes: every ``include`` key must match, no ``exclude`` key may, and
    ``where`` (a predicate over the keys in the select language, never Python) must hold.

    The mappings are compiled to the same language (``source in ['web']``,
    ``source is null or source not in ['alignment']``) and joined with ``where``, so one
    evaluator decides every selection and no value from a spec is ever anything but a string.
    """

    include: Mapping[str, frozenset[str]]
    exclude: Mapping[str, frozenset[str]]
    where: str | None = None

    @property
    def where_keys(self) -> set[str]:
        """The keys ``where`` names."""
        return set(column_names(parse(self.where))) if self.where else set()

    def check_where(self) -> None:
        """Type-check ``where`` (every key is a string); an ExpressionError if it does not fit.
        That the keys exist is the resolver's check, which knows how the shards were split."""
        if self.where:
            compile_predicate(self.where, string_columns(self.where_keys))

    @property
    def keys(self) -> set[str]:
        return set(self.include) | set(self.exclude) | self.where_keys

    @property
    def expression(self) -> str:
        """The whole selection as one predicate of the select language (``true`` selects everything)."""
        parts = [f"{key} in {_listed(values)}" for key, values in self.include.items()]
        parts += [f"({key} is null or {key} not in {_listed(values)})" for key, values in self.exclude.items()]
        parts += [f"({self.where})"] if self.where else []
        return " and ".join(parts) or "true"

    @cached_property
    def predicate(self) -> Predicate:
        """``expression`` compiled once, over the keys as strings."""
        return compile_predicate(self.expression, string_columns(sorted(self.keys)))

    def describe(self) -> str:
        """The selection as a spec writes it, for messages: ``select {source: alignment}``."""

        def written(predicates: Mapping[str, frozenset[str]]) -> str:
            items = (f"{key}: {_written_values(values)}" for key, values in predicates.items())
            return "{" + ", ".join(items) + "}"

        parts = [f"select {written(self.include)}"] if self.include else []
        parts += [f"exclude {written(self.exclude)}"] if self.exclude else []
        parts += [f"where {self.where}"] if self.where else []
        return ", ".join(parts) or "select {}"

    def matches(self, keys: Mapping[str, str]) -> bool:
        """Whether a prefix with these keys is selected (a key the prefix lacks is null)."""
        names = sorted(self.keys | set(keys)) or ["prefix"]  # one column at least: a table of one row
        one_prefix = pa.table({name: pa.array([keys.get(name)], pa.string()) for name in names})
        return bool(self.predicate.mask(one_prefix)[0].as_py())


def _listed(values: frozenset[str]) -> str:
    return "[" + ", ".join(quoted(value) for value in sorted(values)) + "]"


@dataclass(frozen=True)
class Group:
    name: str
    weight: float
    select: Selector
    within: str
    over: str | None
    temperature: float | None
    weights: Mapping[str, float]
    line: int


@dataclass(frozen=True)
class Phase:
    name: str
    groups: tuple[Group, ...]
    tokens: float | None
    line: int


@dataclass(frozen=True)
class BlendSpec:
    name: str
    path: str
    seq_length: int
    phases: Mapping[str, Phase]
    default_max_epochs: float | None = None
    source_max_epochs: Mapping[str, float] = field(default_factory=dict)
    cap_lines: Mapping[str, int] = field(default_factory=dict)

    def phase(self, name: str | None) -> Phase:
        """The named phase, or the first when ``name`` is None."""
        if name is None:
            return next(iter(self.phases.values()))
        if name not in self.phases:
            raise BlendSpecError(f"{self.path}: no phase {name!r}; phases are {', '.join(self.phases)}")
        return self.phases[name]

    def max_epochs(self, source: str) -> float | None:
        return self.source_max_epochs.get(source, self.default_max_epochs)


class _LinedMapping(dict):
    """A YAML mapping that remembers the line of itself and of each key."""

    line: int
    key_lines: dict[Any, int]


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> _LinedMapping:
    """A mapping with its lines (keys are unique: config_yaml refuses a key written twice)."""
    loader.flatten_mapping(node)
    mapping = _LinedMapping()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1
    return mapping


class _LineLoader(yaml.SafeLoader):
    yaml_constructors: ClassVar[dict] = {
        **yaml.SafeLoader.yaml_constructors,
        "tag:yaml.org,2002:map": _construct_mapping,
    }


class _Reader:
    """Validation helpers that report ``path:line: dotted.key: problem``."""

    def __init__(self, path: str):
        self.path = path

    def fail(self, line: int, where: str, problem: str) -> BlendSpecError:
        return BlendSpecError(f"{self.path}:{line}: {where}: {problem}")

    def mapping(self, value: Any, line: int, where: str, allowed: tuple[str, ...] | None) -> _LinedMapping:
        if not isinstance(value, _LinedMapping):
            raise self.fail(line, where, f"expected a mapping, got {type(value).__name__} {value!r}")
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    raise self.fail(
                        value.key_lines[key], f"{where}.{key}", f"unknown key; expected one of: {', '.join(allowed)}"
                    )
        return value

    def number(self, mapping: _LinedMapping, key: str, where: str, minimum: float = 0.0, strict: bool = False) -> float:
        """A finite number at least ``minimum`` (above it when ``strict``): NaN passes every
        ``<`` test and infinity normalises every other weight to 0, so neither gets through."""
        value = mapping[key]
        line = mapping.key_lines[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(line, f"{where}.{key}", f"expected a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:  # a YAML integer past float's range
            number = math.inf
        if not math.isfinite(number):
            raise self.fail(line, f"{where}.{key}", f"must be a finite number, got {spelled(number)}")
        if value < minimum or (strict and value == minimum):
            raise self.fail(line, f"{where}.{key}", f"must be {'>' if strict else '>='} {minimum:g}, got {value!r}")
        return number

    def whole_number(self, mapping: _LinedMapping, key: str, where: str, minimum: int) -> int:
        """A finite whole number at least ``minimum`` (``4096.0`` is 4096, ``4096.5`` is refused)."""
        value = self.number(mapping, key, where, minimum)
        if not value.is_integer():
            raise self.fail(mapping.key_lines[key], f"{where}.{key}", f"must be a whole number, got {mapping[key]!r}")
        return int(value)

    def word(self, mapping: _LinedMapping, key: str, where: str) -> str:
        value = mapping[key]
        if not isinstance(value, str) or not value:
            raise self.fail(mapping.key_lines[key], f"{where}.{key}", f"expected a name, got {value!r}")
        return value

    def predicate(self, mapping: _LinedMapping, key: str, where: str) -> str:
        """A predicate in the select language; its syntax is checked here, its keys at resolve."""
        text = self.word(mapping, key, where)
        try:
            parse(text)
        except ExpressionError as error:
            raise self.fail(mapping.key_lines[key], f"{where}.{key}", str(error)) from None
        return text

    def values(self, mapping: _LinedMapping, key: str, where: str) -> dict[str, frozenset[str]]:
        """A predicate mapping: key -> one value or a list of values."""
        predicates = self.mapping(mapping[key], mapping.key_lines[key], f"{where}.{key}", None)
        parsed = {}
        for column, wanted in predicates.items():
            if not is_column_name(str(column)):
                raise self.fail(
                    predicates.key_lines[column],
                    f"{where}.{key}",
                    f"{str(column)!r} is not a key a selection can name (ASCII letters, digits and _, not a keyword "
                    "of the select language)",
                )
            items = wanted if isinstance(wanted, list) else [wanted]
            if not items or any(isinstance(item, (dict, list)) or item is None for item in items):
                raise self.fail(
                    predicates.key_lines[column],
                    f"{where}.{key}.{column}",
                    f"expected a value or a list of values, got {wanted!r}",
                )
            parsed[str(column)] = frozenset(_as_key_value(item) for item in items)
        return parsed


def _written_values(values: frozenset[str]) -> str:
    ordered = sorted(values)
    return ordered[0] if len(ordered) == 1 else "[" + ", ".join(ordered) + "]"


def _as_key_value(value: Any) -> str:
    """Spell a YAML scalar the way tokenize spells column values (Arrow's cast to string)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _group(reader: _Reader, name: str, value: Any, line: int, where: str) -> Group:
    group = reader.mapping(value, line, where, GROUP_KEYS)
    if "weight" not in group:
        raise reader.fail(group.line, where, "missing `weight` (a number >= 0; group weights are normalised per phase)")
    weight = reader.number(group, "weight", where)
    # Without `select` or `where`, a group takes the category it is named after.
    default = {} if "where" in group else {CATEGORY: frozenset([name])}
    include = reader.values(group, "select", where) if "select" in group else default
    exclude = reader.values(group, "exclude", where) if "exclude" in group else {}
    predicate = reader.predicate(group, "where", where) if "where" in group else None
    within = reader.word(group, "within", where) if "within" in group else "tokens"
    if within not in WITHIN_MODES:
        raise reader.fail(
            group.key_lines["within"], f"{where}.within", f"{within!r}; expected one of: {', '.join(WITHIN_MODES)}"
        )
    for key in ("over", "temperature", "weights"):
        if key in group and key not in _MODE_KEYS[within]:
            users = " or ".join(f"`within: {mode}`" for mode, keys in _MODE_KEYS.items() if key in keys)
            raise reader.fail(group.key_lines[key], f"{where}.{key}", f"only used with {users}, not `within: {within}`")
    for key in _MODE_KEYS[within] - {"over"}:
        if key not in group:
            raise reader.fail(group.line, where, f"`within: {within}` needs `{key}`")
    over = reader.word(group, "over", where) if "over" in group else _DEFAULT_OVER.get(within)
    temperature = reader.number(group, "temperature", where, strict=True) if "temperature" in group else None
    weights: dict[str, float] = {}
    if "weights" in group:
        table = reader.mapping(group["weights"], group.key_lines["weights"], f"{where}.weights", None)
        weights = {_as_key_value(k): reader.number(table, k, f"{where}.weights") for k in table}
        if not any(weights.values()):
            raise reader.fail(table.line, f"{where}.weights", "needs at least one weight above 0")
    return Group(name, weight, Selector(include, exclude, predicate), within, over, temperature, weights, line)


def _phase(reader: _Reader, name: str, value: Any, line: int) -> Phase:
    where = f"phases.{name}"
    phase = reader.mapping(value, line, where, PHASE_KEYS)
    if "groups" not in phase:
        raise reader.fail(phase.line, where, "missing `groups` (group name -> weight and selection)")
    groups_map = reader.mapping(phase["groups"], phase.key_lines["groups"], f"{where}.groups", None)
    if not groups_map:
        raise reader.fail(groups_map.line, f"{where}.groups", "needs at least one group")
    groups = tuple(
        _group(reader, str(group), groups_map[group], groups_map.key_lines[group], f"{where}.groups.{group}")
        for group in groups_map
    )
    if not any(group.weight > 0 for group in groups):
        raise reader.fail(groups_map.line, f"{where}.groups", "every weight is 0; give at least one group a weight")
    tokens = None
    if "tokens" in phase:
        try:
            tokens = parse_token_count(phase["tokens"])
        except ValueError as error:
            raise reader.fail(phase.key_lines["tokens"], f"{where}.tokens", str(error)) from None
    return Phase(name, groups, tokens, line)


def parse_spec(text: str, path: str) -> BlendSpec:
    reader = _Reader(path)
    data, _ = load_config_yaml(text, path, _LineLoader, BlendSpecError)  # a SafeLoader subclass: no objects
    top = reader.mapping(data, 1, "spec", TOP_KEYS)
    if "phases" not in top:
        raise reader.fail(top.line, "spec", "missing `phases` (phase name -> groups)")
    phases_map = reader.mapping(top["phases"], top.key_lines["phases"], "phases", None)
    if not phases_map:
        raise reader.fail(phases_map.line, "phases", "needs at least one phase")
    phases = {str(name): _phase(reader, str(name), phases_map[name], phases_map.key_lines[name]) for name in phases_map}
    seq_length = reader.whole_number(top, "seq_length", "spec", 1) if "seq_length" in top else DEFAULT_SEQ_LENGTH
    default_cap, source_caps, cap_lines = None, {}, {}
    if "max_epochs" in top:
        caps = reader.mapping(top["max_epochs"], top.key_lines["max_epochs"], "max_epochs", CAP_KEYS)
        if "default" in caps:
            default_cap = reader.number(caps, "default", "max_epochs", strict=True)
            cap_lines["*"] = caps.key_lines["default"]
        if "sources" in caps:
            table = reader.mapping(caps["sources"], caps.key_lines["sources"], "max_epochs.sources", None)
            source_caps = {str(s): reader.number(table, s, "max_epochs.sources", strict=True) for s in table}
            cap_lines.update({str(s): table.key_lines[s] for s in table})
    name = reader.word(top, "name", "spec") if "name" in top else Path(path).stem
    return BlendSpec(name, path, seq_length, phases, default_cap, source_caps, cap_lines)


def load_spec(path: str | Path) -> BlendSpec:
    path = Path(path)
    if not path.is_file():
        raise BlendSpecError(f"{path}: no such blend spec; see blend_specs/ for examples")
    return parse_spec(read_config_text(path, "blend spec", BlendSpecError), str(path))
