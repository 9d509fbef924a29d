"""Atomic file creation: readers see a whole file or none, never a torn one."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from corpusmill.curation.errors import CorpusmillError

TMP_MARKER = ".tmp-"


class DamagedRecordError(CorpusmillError, ValueError):
    """A JSON record corpusmill wrote (a manifest, a completion record) no longer parses."""


def temp_sibling(final: Path) -> Path:
    """A temporary name next to ``final``, unique per attempt, so concurrent or retried writers never share one.

    The name lives in the same directory so the final rename is atomic on POSIX
    filesystems (local disks, NFS, Lustre); ``TMP_MARKER`` lets readers skip it.
    """
    return final.with_name(f"{final.name}{TMP_MARKER}{uuid.uuid4().hex[:12]}")


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``final``; rename it into place on success."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(final)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json_atomic(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> Any:
    """A JSON record; a damaged one is a user-facing error that names the file, not a traceback."""
    try:
        return json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DamagedRecordError(
            f"{path} is damaged (not valid JSON: {error}); re-run the stage that wrote it "
            "(with --overwrite if it reports the output complete)"
        ) from error


def link_or_copy(source: Path, final: Path) -> None:
    """Make ``final`` a file with ``source``'s bytes, leaving ``source`` in place.

    A hard link is atomic and costs no I/O; filesystems without hard links get an atomic copy.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, final)
    except OSError:
        with atomic_path(final) as tmp:
            shutil.copyfile(source, tmp)
