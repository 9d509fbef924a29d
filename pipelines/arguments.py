"""Command-line flags derived from a stage's options declaration (``corpusmill.curation.options``)."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from corpusmill.curation.options import COMMA, NARGS, OptionSpec, specs

T = TypeVar("T")



def _argparse_type(spec: OptionSpec) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return spec.convert_text(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error) or f"invalid value {text!r}") from None

    convert.__name__ = spec.base.__name__  # argparse names the type in its error message
    return convert


def _help(spec: OptionSpec) -> str:
    text = spec.metadata["help"]
    shown = not any(spec.default is hidden for hidden in (dataclasses.MISSING, None, False)) and spec.default != ()
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


def _comma_list(spec: OptionSpec) -> Callable[[str], tuple[Any, ...]]:
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
