"""Stage options, declared once: CLI flags, pipeline-YAML keys and the Python API derive from them.

A stage declares its options as a frozen, keyword-only dataclass whose fields carry
:func:`option` metadata (help text, how the command line spells the field). From that
one declaration:

* ``corpusmill.pipelines.arguments`` builds the stage's command-line flags (:func:`specs`
  tells it each option's type, default and spelling);
* :func:`from_mapping` validates a pipeline step's keys (an unknown key or a wrong
  type is a :class:`ConfigError` that names the step, the key and its YAML line);
* Python callers construct the dataclass directly.

Supported field types: ``str``, ``int``, ``float``, ``bool``, ``tuple[str, ...]``
(``tuple[float, ...]`` too) and any of them ``| None``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from corpusmill.curation.errors import ConfigError

T = TypeVar("T")

# How a tuple field is written on the command line.
COMMA = "comma"  # --split-by a,b,c
NARGS = "nargs"  # --upsample a=1 b=2 (repeatable, extends)
APPEND = "append"  # --shards A --shards B
_LIST_STYLES = (COMMA, NARGS, APPEND)


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    positional: bool = False,
    flag: str | None = None,
    metavar: str | None = None,
    choices: tuple[Any, ...] | None = None,
    cli: str = COMMA,
    parse: Callable[[str], Any] | None = None,
) -> Any:
    """A stage option: a dataclass field with what the CLI and the YAML need to know about it.

    ``parse`` turns the text form of a value (a CLI word, or a YAML string given for a
    non-string field, e.g. ``20M`` tokens) into the field's type; it raises ValueError
    with a readable message. Without a default the option is required.
    """
    if cli not in _LIST_STYLES:
        raise ValueError(f"cli must be one of {_LIST_STYLES}, got {cli!r}")
    metadata = {
        "help": help,
        "positional": positional,
        "flag": flag,
        "metavar": metavar,
        "choices": choices,
        "cli": cli,
        "parse": parse,
    }
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple (immutable) as a list option's default")
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """One option, its metadata resolved against the field's type."""

    name: str
    base: type  # str, int, float or bool (the item type for tuples)
    is_tuple: bool
    optional: bool
    default: Any
    metadata: Mapping[str, Any]

    @property
    def required(self) -> bool:
        return self.default is dataclasses.MISSING

    @property
    def flag(self) -> str:
        return self.metadata["flag"] or "--" + self.name.replace("_", "-")

    def convert_text(self, text: str) -> Any:
        """One text item (a CLI word) as the field's item type."""
        parse = self.metadata["parse"]
        if parse is not None:
            return parse(text)
        if self.base is int:
            return int(text)
        if self.base is float:
            return float(text)
        return text


def specs(options_type: type) -> list[OptionSpec]:
    """The options of a declaration, in field order."""
    hints = typing.get_type_hints(options_type)
    result = []
    for field in dataclasses.fields(options_type):
        if "help" not in field.metadata:
            raise TypeError(f"{options_type.__name__}.{field.name} is not declared with option()")
        base, is_tuple, optional = _unpack(hints[field.name], f"{options_type.__name__}.{field.name}")
        default = field.default
        result.append(OptionSpec(field.name, base, is_tuple, optional, default, field.metadata))
    return result


def _unpack(hint: Any, where: str) -> tuple[type, bool, bool]:
    optional = False
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        rest = [a for a in args if a is not type(None)]
        optional = len(rest) < len(args)
        if len(rest) != 1:
            raise TypeError(f"{where}: unsupported option type {hint}")
        hint = rest[0]
        args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:
        if len(args) != 2 or args[1] is not Ellipsis or args[0] not in (str, int, float):
            raise TypeError(f"{where}: tuple options are tuple[str, ...], tuple[int, ...] or tuple[float, ...]")
        return args[0], True, optional
    if hint not in (str, int, float, bool):
        raise TypeError(f"{where}: unsupported option type {hint}")
    return hint, False, optional


# --- mappings (pipeline YAML) -------------------------------------------------------------------

Locate = Callable[[str | None], str]


def from_mapping(options_type: type[T], mapping: Mapping[str, Any], locate: Locate) -> T:
    """The declaration filled from a mapping such as a pipeline step.

    ``locate(key)`` names where a key was written (file, line, step) for error messages;
    ``locate(None)`` names the mapping itself.
    """
    by_name = {spec.name: spec for spec in specs(options_type)}
    values = {}
    for key, value in mapping.items():
        spec = by_name.get(str(key).replace("-", "_"))
        if spec is None:
            known = ", ".join(sorted(by_name))
            raise ConfigError(f"{locate(key)}: unknown key `{key}` (this stage takes: {known})")
        values[spec.name] = _coerce(spec, value, lambda problem, key=key: f"{locate(key)}: `{key}` {problem}")
    missing = [spec.name for spec in by_name.values() if spec.required and spec.name not in values]
    if missing:
        raise ConfigError(f"{locate(None)}: missing required key(s) {', '.join(f'`{m}`' for m in missing)}")
    try:
        return options_type(**values)
    except ConfigError as error:  # a check across options (__post_init__): name the mapping it came from
        raise ConfigError(f"{locate(None)}: {error}") from None


def _coerce(spec: OptionSpec, value: Any, problem: Callable[[str], str]) -> Any:
    if value is None:
        if spec.optional or (spec.default is None):
            return None
        raise ConfigError(problem("may not be null"))
    if spec.is_tuple:
        if isinstance(value, str):
            items = [part.strip() for part in value.split(",") if part.strip()]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise ConfigError(problem(f"must be a list, got {type(value).__name__} {value!r}"))
        return tuple(_coerce_item(spec, item, problem) for item in items)
    return _coerce_item(spec, value, problem)


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _coerce_item(spec: OptionSpec, value: Any, problem: Callable[[str], str]) -> Any:
    expected = _TYPE_NAMES[spec.base]
    if isinstance(value, str) and (spec.base is not str or spec.metadata["parse"] is not None):
        if spec.base is bool:
            raise ConfigError(problem(f"must be true or false, got {value!r}"))
        try:
            value = spec.convert_text(value)
        except ValueError as error:
            raise ConfigError(problem(f"must be {expected}: {error}")) from None
    elif spec.base is bool:
        if not isinstance(value, bool):
            raise ConfigError(problem(f"must be true or false, got {value!r}"))
    elif spec.base is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    elif spec.base is int and isinstance(value, float) and value.is_integer():
        value = int(value)  # YAML reads 2.0e9 as a float
    elif spec.base is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    elif not isinstance(value, spec.base) or isinstance(value, bool) != (spec.base is bool):
        raise ConfigError(problem(f"must be {expected}, got {type(value).__name__} {value!r}"))
    choices = spec.metadata["choices"]
    if choices and value not in choices:
        raise ConfigError(problem(f"must be one of {', '.join(map(str, choices))}, got {value!r}"))
    return value
