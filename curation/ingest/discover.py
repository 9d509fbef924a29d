"""Turn the user's input paths into ingest units: one per data file, or a chunk of a file tree."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

from corpusmill.curation.errors import CorpusmillError

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".ndjson", ".ndjson.gz", ".ndjson.zst")
PARQUET_SUFFIXES = (".parquet",)
SKIPPED_DIRS = frozenset({".git", ".hg", ".svn"})
FORMATS = ("auto", "jsonl", "parquet", "files")


class InputError(CorpusmillError, ValueError):
    """An input path cannot be planned; the message says what to pass instead."""


def data_kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def default_source(path: Path) -> str:
    """``web.jsonl.gz`` -> ``web``; a directory keeps its name."""
    name = path.resolve().name
    return name.split(".")[0] if path.is_file() else name


def walk_files(root: Path) -> list[tuple[str, int]]:
    """(relative posix path, size) of every regular file, sorted; VCS folders and links skipped."""
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIPPED_DIRS)
        for name in files:
            path = Path(directory, name)
            if path.is_symlink() or not path.is_file():
                continue
            found.append((path.relative_to(root).as_posix(), path.stat().st_size))
    return sorted(found)


def split_source(argument: str) -> tuple[Path, str | None]:
    """``PATH=SOURCE`` names an input's source; an existing path containing '=' stays a path."""
    if Path(argument).exists() or "=" not in argument:
        return Path(argument), None
    path, source = argument.rsplit("=", 1)
    return Path(path), source or None


def _expand_globs(inputs: list[str]) -> list[tuple[str, str | None]]:
    """Each input as (path, source); a pattern like ``/data/*.jsonl.zst`` expands, sorted."""
    expanded = []
    for given in inputs:
        path, named_source = split_source(given)
        if not path.exists() and any(ch in str(path) for ch in "*?["):
            matches = sorted(glob.glob(str(path), recursive=True))
            if not matches:
                raise InputError(f"{path}: the pattern matches no file")
            expanded += [(match, named_source) for match in matches]
        else:
            expanded.append((str(path), named_source))
    return expanded


def plan_units(
    inputs: list[str], fmt: str = "auto", source: str | None = None, unit_files: int = 2000, unit_bytes: int = 128 * 2**20
) -> list[dict[str, Any]]:
    units: list[dict[str, Any]] = []
    for given, named_source in _expand_globs(inputs):
        path = Path(given)
        src = named_source or source or default_source(path)
        if path.is_file():
            kind = data_kind(path) if fmt == "auto" else fmt
            if kind is None or kind == "files":
                raise InputError(f"{path}: unknown data format; name it *.jsonl[.gz|.zst] or *.parquet, or pass --format")
            units.append({"kind": kind, "path": str(path.resolve()), "rel": path.name, "source": src, "size": path.stat().st_size})
        elif path.is_dir():
            units += _plan_directory(path, fmt, src, unit_files, unit_bytes)
        else:
            raise InputError(f"{path}: no such file or directory")
    for index, unit in enumerate(units):
        unit["unit_id"] = f"u{index:05d}"
    return units


def _plan_directory(root: Path, fmt: str, source: str, unit_files: int, unit_bytes: int) -> list[dict[str, Any]]:
    files = walk_files(root)
    kinds = {data_kind(Path(rel)) for rel, _ in files}
    as_data = fmt in ("jsonl", "parquet") or (fmt == "auto" and files and None not in kinds)
    if as_data:
        return [
            {"kind": fmt if fmt != "auto" else data_kind(Path(rel)), "path": str((root / rel).resolve()), "rel": rel, "source": source, "size": size}
            for rel, size in files
        ]
    units, chunk, chunk_bytes = [], [], 0
    for rel, size in files:
        if chunk and (len(chunk) >= unit_files or chunk_bytes + size > unit_bytes):
            units.append({"kind": "files", "root": str(root.resolve()), "files": chunk, "source": source})
            chunk, chunk_bytes = [], 0
        chunk.append(rel)
        chunk_bytes += size
    if chunk:
        units.append({"kind": "files", "root": str(root.resolve()), "files": chunk, "source": source})
    return units
