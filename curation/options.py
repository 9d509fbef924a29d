"""Stage options, declared once: CLI flags, pipeline-YAML keys and the Python API derive from them.

A stage declares its options as a frozen, keyword-only dataclass whose fields carry
:func:`option` metadata (help text, how the command line spells the field). From that
one declaration:

* :func:`add_arguments` builds the stage's argparse arguments, and :func:`from_cli`
  turns the parsed namespace into the dataclass;
* :func:`from_mapping` validates a pipeline step's keys (an unknown key or a wrong
  type is a :class:`ConfigError` that names the step, the key and its YAML line);
* Python callers construct the dataclass directly.

Supported field types: ``str``, ``int``, ``float``, ``bool``, ``tuple[str, ...]``
(``tuple[float, ...]`` too) and any of them ``| None``.
"""

from __future__ import annotations

import argparse
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
class _Spec:
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


def specs(options_type: type) -> list[_Spec]:
    """The options of a declaration, in field order."""
    hints = typing.get_type_hints(options_type)
    result = []
    for field in dataclasses.fields(options_type):
        if "help" not in field.metadata:
            raise TypeError(f"{options_type.__name__}.{field.name} is not declared with option()")
        base, is_tuple, optional = _unpack(hints[field.name], f"{options_type.__name__}.{field.name}")
        default = field.default
        result.append(_Spec(field.name, base, is_tuple, optional, default, field.metadata))
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


# --- the command line ---------------------------------------------------------------------------


def _argparse_type(spec: _Spec) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return spec.convert_text(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error) or f"invalid value {text!r}") from None

    convert.__name__ = spec.base.__name__  # argparse names the type in its error message
    return convert


def _help(spec: _Spec) -> str:
    text = spec.metadata["help"]
    shown = spec.default not in (dataclasses.MISSING, None, False, ())
    if shown and "default" not in text:
        value = ",".join(map(str, spec.default)) if spec.is_tuple else spec.default
        text += f" (default: {value})".replace("%", "%%")
    return text


def add_arguments(parser: argparse.ArgumentParser, options_type: type) -> None:
    """Declare every option of ``options_type`` on ``parser``."""
    for spec in specs(options_type):
        kwargs: dict[str, Any] = {"help": _help(spec)}
        if spec.metadata["metavar"]:
            kwargs["metavar"] = spec.metadata["metavar"]
        if spec.metadata["choices"]:
            kwargs["choices"] = spec.metadata["choices"]
        if spec.base is bool and not spec.is_tuple:
            kwargs["action"] = argparse.BooleanOptionalAction if spec.default is True else "store_true"
            parser.add_argument(spec.flag, dest=spec.name, **kwargs)
            continue
        kwargs["type"] = _argparse_type(spec)
        if spec.metadata["positional"]:
            if spec.is_tuple:
                kwargs["nargs"] = "+" if spec.required else "*"
            elif not spec.required:
                kwargs["nargs"] = "?"
            if not spec.required:
                kwargs["default"] = spec.default
            parser.add_argument(spec.name, **kwargs)
            continue
        if spec.is_tuple:
            style = spec.metadata["cli"]
            if style == COMMA:
                kwargs["type"] = _comma_list(spec)
            elif style == NARGS:
                kwargs.update(action="extend", nargs="+")
            else:
                kwargs["action"] = "append"
        if spec.required:
            kwargs["required"] = True
        parser.add_argument(spec.flag, dest=spec.name, default=None, **kwargs)


def _comma_list(spec: _Spec) -> Callable[[str], tuple[Any, ...]]:
    item = _argparse_type(spec)

    def convert(text: str) -> tuple[Any, ...]:
        return tuple(item(part.strip()) for part in text.split(",") if part.strip())

    return convert


def from_cli(options_type: type[T], namespace: argparse.Namespace) -> T:
    """The declaration filled from parsed arguments (unset options keep their defaults)."""
    values = {}
    for spec in specs(options_type):
        value = getattr(namespace, spec.name)
        if value is None and not spec.required and not spec.metadata["positional"]:
            continue
        values[spec.name] = tuple(value) if spec.is_tuple and value is not None else value
    return options_type(**values)


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
    return options_type(**values)


def _coerce(spec: _Spec, value: Any, problem: Callable[[str], str]) -> Any:
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


def _coerce_item(spec: _Spec, value: Any, problem: Callable[[str], str]) -> Any:
    expected = spec.base.__name__
    if isinstance(value, str) and (spec.base is not str or spec.metadata["parse"] is not None):
        if spec.base is bool:
            raise ConfigError(problem(f"must be true or false, got {value!r}"))
        try:
            value = spec.convert_text(value)
        except ValueError as error:
            raise ConfigError(problem(f"is not a valid {expected}: {error}")) from None
    elif spec.base is bool:
        if not isinstance(value, bool):
            raise ConfigError(problem(f"must be true or false, got {value!r}"))
    elif spec.base is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    elif spec.base is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    elif not isinstance(value, spec.base) or isinstance(value, bool) != (spec.base is bool):
        raise ConfigError(problem(f"must be a {expected}, got {type(value).__name__} {value!r}"))
    choices = spec.metadata["choices"]
    if choices and value not in choices:
        raise ConfigError(problem(f"must be one of {', '.join(map(str, choices))}, got {value!r}"))
    return value
