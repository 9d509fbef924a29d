"""Configuration YAML (pipelines, blend specs) read as plain data, with one-line errors naming the file.

Configuration must never run code and a hostile file must never crash or hang a run
(issue 15), so every configuration file is read here: YAML's safe loader (no tag builds a
Python object), nesting bounded before the recursive composer sees it, aliases bounded by
the size they expand to (a "billion laughs" file is a few lines long), a key written twice in
one mapping refused (PyYAML keeps the last one without a word), and every problem
one line ``FILE:LINE:COLUMN: what is wrong``, never PyYAML's multi-line ``<unicode string>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from corpusmill.curation.errors import ConfigError, CorpusmillError

MAX_NESTING = 64  # mappings and lists inside one another; configuration needs a handful
MAX_VALUES = 1_000_000  # nodes after every alias is expanded
_TAG_PREFIX = "tag:yaml.org,2002:"


def read_config_text(path: Path, what: str, error: type[CorpusmillError] = ConfigError) -> str:
    """The text of a configuration file, or one line saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as problem:
        raise error(f"{path}: cannot read the {what}: {problem.strerror}") from None
    except UnicodeDecodeError as problem:
        raise error(f"{path}: not UTF-8 text (byte {problem.start}); a {what} is a YAML text file") from None


def yaml_problem(path: str | Path, error: yaml.YAMLError) -> str:
    """PyYAML's error as one line: where (file, line, column) and what, in the file's own terms."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = " ".join(str(getattr(error, "problem", None) or error).split())
    tag = problem.partition("for the tag '")[2].rstrip("'")
    if isinstance(error, yaml.constructor.ConstructorError) and tag:
        shown = "!!" + tag.removeprefix(_TAG_PREFIX) if tag.startswith(_TAG_PREFIX) else tag
        return f"{where}: the tag {shown} is refused: configuration is plain data and no tag builds an object; remove it"
    context = " ".join(str(getattr(error, "context", None) or "").split())
    return f"{where}: not valid YAML: {context + ', ' if context else ''}{problem}"


def _check_nesting(text: str, path: str | Path, error: type[CorpusmillError]) -> None:
    """Refuse deep nesting from the event stream (PyYAML's parser is iterative, its composer recursive)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_NESTING:
                mark = event.start_mark
                raise error(
                    f"{path}:{mark.line + 1}:{mark.column + 1}: nested more than {MAX_NESTING} levels deep; "
                    "configuration is a few levels of mappings and lists"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


_IN_PROGRESS = -1


def _check_unique_keys(node: yaml.MappingNode, path: str | Path, error: type[CorpusmillError]) -> None:
    """A key written twice in one mapping is a mistake PyYAML hides (the last one wins): refuse it."""
    first_lines: dict[tuple[str, str], int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        line = key.start_mark.line + 1
        if (key.tag, key.value) in first_lines:
            raise error(
                f"{path}:{line}: key {key.value!r} appears twice in the same mapping (line {first_lines[key.tag, key.value]})"
            )
        first_lines[key.tag, key.value] = line


def _expanded_size(node: yaml.Node, sizes: dict[int, int], path: str | Path, error: type[CorpusmillError]) -> int:
    """Nodes under ``node`` with every alias expanded (a shared node is counted once per use, computed once)."""
    if sizes.get(id(node)) == _IN_PROGRESS:
        mark = node.start_mark
        raise error(f"{path}:{mark.line + 1}:{mark.column + 1}: an alias (*name) refers to a value that holds it")
    if id(node) not in sizes:
        sizes[id(node)] = _IN_PROGRESS
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            _check_unique_keys(node, path, error)
            children = [item for pair in node.value for item in pair]
        sizes[id(node)] = 1 + sum(_expanded_size(child, sizes, path, error) for child in children)
    return sizes[id(node)]


def load_config_yaml(
    text: str,
    path: str | Path,
    loader: type[yaml.SafeLoader] = yaml.SafeLoader,
    error: type[CorpusmillError] = ConfigError,
) -> tuple[Any, yaml.Node | None]:
    """The data of a configuration text and its node tree (for line numbers), through ``loader``
    (``yaml.SafeLoader`` or a subclass of it); any problem is an ``error`` of one line."""
    if not issubclass(loader, yaml.SafeLoader):
        raise TypeError("configuration is read with yaml.SafeLoader or a subclass of it")
    try:
        _check_nesting(text, path, error)
        root = yaml.compose(text, Loader=loader)
        if root is None:
            return None, None
        if _expanded_size(root, {}, path, error) > MAX_VALUES:
            raise error(
                f"{path}: expands to more than {MAX_VALUES:,} values through its aliases (*name); write the values out"
            )
        constructor = loader(text)
        try:
            return constructor.construct_document(root), root
        finally:
            constructor.dispose()
    except yaml.YAMLError as problem:
        raise error(yaml_problem(path, problem)) from None
