"""KenLM's estimation tools, ``lmplz`` and ``build_binary``: where they are and how they run.

They are not on PyPI (the kenlm wheels carry only the query module): ``make install`` builds
them from the upstream sources (``tools/build_kenlm.sh``) into the virtualenv's ``bin/``, next
to the Python running corpusmill, which is where we look first; ``$PATH`` comes second.
Each run reports its own peak memory (``wait4``'s rusage of that child alone), because
``lm train``'s budget is stated per tool.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from corpusmill.curation.errors import CorpusmillError

SETUP_COMMAND = "make install"


class KenLMToolsMissing(CorpusmillError, FileNotFoundError):
    """lmplz or build_binary is not installed."""


class KenLMToolFailed(CorpusmillError, RuntimeError):
    """lmplz or build_binary exited with an error (its last output lines say why)."""


def tool_path(name: str) -> Path:
    """The installed tool, or a one-line error naming the set-up command."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return beside_python
    found = shutil.which(name)
    if found is None:
        raise KenLMToolsMissing(
            f"KenLM's `{name}` is not installed: run `{SETUP_COMMAND}` in the corpusmill checkout "
            f"(it builds lmplz and build_binary into {beside_python.parent})"
        )
    return Path(found)


@dataclass(frozen=True)
class ToolRun:
    """What one tool run cost: the command line, wall seconds and the child's peak resident memory."""

    command: list[str]
    wall_seconds: float
    peak_rss_bytes: int

    def to_dict(self) -> dict[str, object]:
        return {
            "command": self.command,
            "wall_seconds": round(self.wall_seconds, 2),
            "peak_rss_bytes": self.peak_rss_bytes,
        }


class ToolProcess:
    """A started tool whose stdin the caller may feed; :meth:`wait` reaps it and measures it."""

    def __init__(self, command: list[str], stdin: int | None, stdout: IO[bytes] | None, log: Path):
        self.command = command
        self.log = log
        self._log_file = log.open("wb")
        self._started = time.perf_counter()
        self.process = subprocess.Popen(command, stdin=stdin, stdout=stdout, stderr=self._log_file)

    @property
    def stdin(self) -> IO[bytes]:
        assert self.process.stdin is not None
        return self.process.stdin

    def wait(self) -> ToolRun:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        _, status, usage = os.wait4(self.process.pid, 0)
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self._log_file.close()
        if self.process.returncode != 0:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
            raise KenLMToolFailed(
                f"{Path(self.command[0]).name} failed (exit {self.process.returncode}): {' | '.join(tail)}"
            )
        return ToolRun(self.command, time.perf_counter() - self._started, usage.ru_maxrss * 1024)


def run_tool(command: list[str], log: Path) -> ToolRun:
    """Run a tool to completion (no stdin), raising with its last lines when it fails."""
    return ToolProcess(command, None, None, log).wait()
