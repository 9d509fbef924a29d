"""Turn the user's input paths into ingest units: one per data file, or a chunk of a file tree.

Planning decides three things a reader cannot: which files are read (directory symlinks
are not followed unless asked, and a loop or a second path to the same file never reads
it twice), whether a directory is a folder of data files (job-framework markers such as
``_SUCCESS`` do not make it a file tree) and each file's *label*, the relative path its
generated ids and reject locations use. Labels are relative to the input's root (the
folder given, or a glob's literal prefix) and made unique by construction: two inputs
with the same source and the same relative path are labelled by as many parent folders
as it takes to tell them apart (``d1/web.jsonl``, ``d2/web.jsonl``).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corpusmill.curation.errors import CorpusmillError

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".ndjson", ".ndjson.gz", ".ndjson.zst")
PARQUET_SUFFIXES = (".parquet",)
SKIPPED_DIRS = frozenset({".git", ".hg", ".svn"})
FORMATS = ("auto", "jsonl", "parquet", "files")
# Files that Spark, Hadoop, Dask and friends leave beside the data they write: a folder
# holding them is still a folder of data files, and they are not documents.
MARKER_NAMES = frozenset({"_SUCCESS", "_FAILURE", "_metadata", "_common_metadata", ".DS_Store"})
MARKER_PREFIXES = ("_committed_", "_started_")
MARKER_SUFFIXES = (".crc",)
_MAGIC = frozenset("*?[")
# A file tree is read in units of at most this many files or bytes.
UNIT_FILES = 2000
UNIT_BYTES = 128 * 2**20


class InputError(CorpusmillError, ValueError):
    """An input path cannot be planned; the message says what to pass instead."""


@dataclass
class InputPlan:
    """The units to read, the paths they come from (which --out must stay clear of), and what was skipped."""

    units: list[dict[str, Any]]
    paths: list[str]
    notes: list[str] = field(default_factory=list)


def data_kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def is_marker(name: str) -> bool:
    return name in MARKER_NAMES or name.startswith(MARKER_PREFIXES) or name.endswith(MARKER_SUFFIXES)


def default_source(path: Path) -> str:
    """``web.jsonl.gz`` -> ``web``; a directory keeps its name."""
    name = path.resolve().name
    return name.split(".")[0] if path.is_file() else name


class _Visited:
    """Directories already descended into, by device and inode: what stops symlink loops."""

    def __init__(self) -> None:
        self._seen: set[tuple[int, int]] = set()

    def first_visit(self, path: Path) -> bool:
        try:
            status = path.stat()
        except OSError:
            return False
        key = (status.st_dev, status.st_ino)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


def walk_files(root: Path, follow_symlinks: bool = False, skipped: list[str] | None = None) -> list[tuple[str, int]]:
    """(relative posix path, size) of every regular file under ``root``, sorted; VCS folders skipped.

    Symlinks are skipped (and listed in ``skipped``) unless ``follow_symlinks``; followed
    directories are entered once each, so a loop ends instead of hanging.
    """
    skipped = [] if skipped is None else skipped
    visited = _Visited()
    visited.first_visit(root)
    found = []
    for directory, subdirs, files in os.walk(root, followlinks=follow_symlinks):
        entered = []
        for name in sorted(subdirs):
            path = Path(directory, name)
            if name in SKIPPED_DIRS:
                continue
            if path.is_symlink() and not follow_symlinks:
                skipped.append(str(path))
            elif visited.first_visit(path):
                entered.append(name)
            else:
                skipped.append(f"{path} (a folder already read: symlink loop)")
        subdirs[:] = entered
        for name in files:
            path = Path(directory, name)
            if path.is_symlink() and not follow_symlinks:
                skipped.append(str(path))
            elif path.is_file():
                found.append((path.relative_to(root).as_posix(), path.stat().st_size))
    return sorted(found)


def split_source(argument: str) -> tuple[Path, str | None]:
    """``PATH=SOURCE`` names an input's source; an existing path containing '=' stays a path."""
    if Path(argument).exists() or "=" not in argument:
        return Path(argument), None
    path, source = argument.rsplit("=", 1)
    return Path(path), source or None


def _glob(pattern: Path, follow_symlinks: bool, skipped: list[str]) -> tuple[Path, list[Path]]:
    """(the pattern's literal base folder, sorted matches); ``**`` matches files at any depth.

    Python's own glob follows directory symlinks, so ``**`` over a symlink loop runs until
    paths grow too long; this one follows them only when asked, and enters each folder once.
    """
    parts = pattern.parts
    literal = next(i for i, part in enumerate(parts) if _MAGIC & set(part))
    base = Path(*parts[:literal]) if literal else Path(".")
    matches = _match(base, parts[literal:], follow_symlinks, _Visited(), skipped)
    return base, sorted(dict.fromkeys(matches))


def _match(
    directory: Path, parts: tuple[str, ...], follow: bool, visited: _Visited, skipped: list[str]
) -> Iterator[Path]:
    head, rest = parts[0], parts[1:]
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return
    if head == "**":
        if not rest:
            for rel, _ in walk_files(directory, follow, skipped):
                if not any(part.startswith(".") for part in Path(rel).parts):
                    yield directory / rel
            return
        yield from _match(directory, rest, follow, visited, skipped)
        for entry in entries:
            if not entry.name.startswith(".") and _enter(entry, follow, visited, skipped):
                yield from _match(entry, parts, follow, visited, skipped)
        return
    for entry in entries:
        if not fnmatch.fnmatchcase(entry.name, head) or (entry.name.startswith(".") and not head.startswith(".")):
            continue
        if not rest:
            if entry.is_dir() and entry.is_symlink() and not follow:
                skipped.append(str(entry))
            else:
                yield entry
        elif _enter(entry, follow, visited, skipped):
            yield from _match(entry, rest, follow, visited, skipped)


def _enter(entry: Path, follow: bool, visited: _Visited, skipped: list[str]) -> bool:
    """Whether a glob may descend into ``entry``: a real folder, or a followed link not seen before."""
    if not entry.is_dir():
        return False
    if entry.is_symlink() and not follow:
        skipped.append(str(entry))
        return False
    return visited.first_visit(entry)


def _expand(inputs: list[str], follow_symlinks: bool, skipped: list[str]) -> list[tuple[Path, Path | None, str | None]]:
    """Each input as (path, the glob's base folder or None, source); patterns expand, sorted."""
    expanded: list[tuple[Path, Path | None, str | None]] = []
    for given in inputs:
        path, named_source = split_source(given)
        if not path.exists() and _MAGIC & set(str(path)):
            base, matches = _glob(path, follow_symlinks, skipped)
            if not matches:
                raise InputError(f"{path}: the pattern matches no file")
            expanded += [(match, base, named_source) for match in matches]
        else:
            expanded.append((path, None, named_source))
    return expanded


def plan_inputs(
    inputs: list[str],
    fmt: str = "auto",
    source: str | None = None,
    follow_symlinks: bool = False,
    unit_files: int | None = None,
    unit_bytes: int | None = None,
) -> InputPlan:
    """Units for every input, in input order (the order that decides which duplicate id is kept)."""
    unit_files, unit_bytes = unit_files or UNIT_FILES, unit_bytes or UNIT_BYTES
    units: list[dict[str, Any]] = []
    skipped_links: list[str] = []
    markers: list[str] = []
    paths = []
    for path, glob_base, named_source in _expand(inputs, follow_symlinks, skipped_links):
        src = named_source or source or default_source(path)
        paths.append(str(path))
        if path.is_file():
            kind = data_kind(path) if fmt == "auto" else fmt
            if kind is None or kind == "files":
                raise InputError(
                    f"{path}: unknown data format; name it *.jsonl[.gz|.zst] or *.parquet, or pass --format"
                )
            rel = path.relative_to(glob_base).as_posix() if glob_base is not None else path.name
            units.append(_data_unit(kind, path, rel, src))
        elif path.is_dir():
            units += _plan_directory(path, fmt, src, follow_symlinks, unit_files, unit_bytes, skipped_links, markers)
        else:
            raise InputError(f"{path}: no such file or directory")
    notes = _once_each(units)
    _label_uniquely(units)
    for index, unit in enumerate(units):
        unit["unit_id"], unit["index"] = f"u{index:05d}", index
    if skipped_links:
        notes.append(
            f"skipped {len(skipped_links)} symlink(s), e.g. {skipped_links[0]}; pass --follow-symlinks to read them"
        )
    if markers:
        notes.append(f"skipped {len(markers)} marker file(s) of data folders, e.g. {markers[0]}")
    return InputPlan(units, paths, notes)


def _data_unit(kind: str, path: Path, rel: str, source: str) -> dict[str, Any]:
    # "given" (the path as named, links unresolved) only serves labelling; see _label_uniquely.
    return {
        "kind": kind,
        "path": str(path.resolve()),
        "given": os.path.abspath(path),
        "rel": rel,
        "source": source,
        "size": path.stat().st_size,
    }


def _plan_directory(
    root: Path,
    fmt: str,
    source: str,
    follow_symlinks: bool,
    unit_files: int,
    unit_bytes: int,
    skipped_links: list[str],
    markers: list[str],
) -> list[dict[str, Any]]:
    files = walk_files(root, follow_symlinks, skipped_links)
    data_files = [(rel, size) for rel, size in files if not is_marker(Path(rel).name)]
    kinds = {data_kind(Path(rel)) for rel, _ in data_files}
    as_data = fmt in ("jsonl", "parquet") or (fmt == "auto" and data_files and None not in kinds)
    if as_data:
        markers += [str(root / rel) for rel, _ in files if is_marker(Path(rel).name)]
        return [
            _data_unit(fmt if fmt != "auto" else str(data_kind(Path(rel))), root / rel, rel, source)
            for rel, _ in data_files
        ]
    units, chunk, chunk_bytes = [], [], 0
    for rel, size in files:
        if chunk and (len(chunk) >= unit_files or chunk_bytes + size > unit_bytes):
            units.append(_files_unit(root, chunk, chunk_bytes, source))
            chunk, chunk_bytes = [], 0
        chunk.append(rel)
        chunk_bytes += size
    if chunk:
        units.append(_files_unit(root, chunk, chunk_bytes, source))
    return units


def _files_unit(root: Path, files: list[str], size: int, source: str) -> dict[str, Any]:
    return {"kind": "files", "root": str(root.resolve()), "prefix": "", "files": files, "source": source, "size": size}


def _once_each(units: list[dict[str, Any]]) -> list[str]:
    """Drop data files planned a second time (given twice, or reached again through a link); say so."""
    first: dict[str, dict[str, Any]] = {}
    notes, kept = [], []
    for unit in units:
        if unit["kind"] == "files":
            kept.append(unit)
            continue
        earlier = first.setdefault(unit["path"], unit)
        if earlier is unit:
            kept.append(unit)
        else:
            notes.append(f"{unit['path']} is given more than once; it is read once (as {earlier['rel']})")
    units[:] = kept
    return notes


def _label_uniquely(units: list[dict[str, Any]]) -> None:
    """Lengthen colliding labels with parent folders until every (source, label) is unique.

    A data file's label is its ``rel``; a file tree's is the ``prefix`` in front of its files'
    relative paths, needed only when two trees with one source share a relative path.
    """
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for unit in units:
        if unit["kind"] != "files":
            by_key.setdefault((unit["source"], unit["rel"]), []).append(unit)
    for group in by_key.values():
        if len(group) > 1:
            given = [Path(unit["given"]) for unit in group]
            for unit, label in zip(group, _distinct_tails(given, len(Path(group[0]["rel"]).parts))):
                unit["rel"] = label
    for unit in units:
        unit.pop("given", None)
    trees: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for unit in units:
        if unit["kind"] == "files":
            trees.setdefault((unit["source"], unit["root"]), []).append(unit)
    roots_by_source: dict[str, list[str]] = {}
    for source, root in trees:
        roots_by_source.setdefault(source, []).append(root)
    for source, roots in roots_by_source.items():
        names = [{rel for unit in trees[(source, root)] for rel in unit["files"]} for root in roots]
        colliding = [
            root for i, root in enumerate(roots) if any(names[i] & other for j, other in enumerate(names) if j != i)
        ]
        for root, label in zip(colliding, _distinct_tails([Path(r) for r in colliding], 0)):
            for unit in trees[(source, root)]:
                unit["prefix"] = f"{label}/"


def _distinct_tails(paths: list[Path], start: int) -> list[str]:
    """The shortest trailing parts (more than ``start`` of them) that tell ``paths`` apart."""
    depth = start + 1
    while True:
        tails = [Path(*path.parts[-depth:]).as_posix() for path in paths]
        if len(set(tails)) == len(tails) or all(depth >= len(path.parts) for path in paths):
            return tails
        depth += 1
