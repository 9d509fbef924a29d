"""The CLI's rendering of stage progress: a live bar on a terminal, periodic lines elsewhere."""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, TextIO

from corpusmill.curation.progress import Progress

_BAR_WIDTH = 24


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``: short enough for a progress line."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class ConsoleProgress:
    """Implements ``corpusmill.curation.progress.Progress`` for a person watching stderr.

    On a terminal the current phase is one line redrawn in place (units, documents, MB,
    rate, elapsed time and the time left in the phase at its rate so far); in a log (CI, a
    file, Ray job logs) it prints a line every ``interval_s`` seconds and when the phase
    completes. A pipeline sets ``context`` (``step 3/9 dedup_fuzzy``) and ``run_started``
    so every line also says where the run is and how long it has taken.
    """

    def __init__(self, stream: TextIO | None = None, interval_s: float = 2.0):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.interval_s = 0.1 if self.live else interval_s
        self.context = ""
        self.run_started: float | None = None
        self._label = ""
        self._total = self._done = self._ran = self._docs = self._bytes = 0
        self._start = self._last = time.monotonic()
        self._drawn = False

    def phase_started(self, label: str, total: int, done: int) -> None:
        self._label, self._total, self._done, self._ran = label, total, done, 0
        self._docs = self._bytes = 0
        self._start = self._last = time.monotonic()

    def unit_finished(self, label: str, record: dict[str, Any]) -> None:
        self._done += 1
        self._ran += 1
        counted = record.get("stats", {}).get("in", {})
        self._docs += counted.get("docs", 0)
        self._bytes += counted.get("bytes", 0)
        now = time.monotonic()
        if now - self._last >= self.interval_s or self._done == self._total:
            self._last = now
            self._show(self._line(now))

    def phase_finished(self, label: str) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def note(self, text: str) -> None:
        self._clear()
        print(f"{self.context}: {text}" if self.context else text, file=self.stream, flush=True)

    def _line(self, now: float) -> str:
        elapsed = max(now - self._start, 1e-9)
        volume = ""
        if self._docs:
            mb = self._bytes / 1e6
            volume = f", {self._docs:,} docs, {mb:,.1f} MB, {mb / elapsed:,.1f} MB/s"
        timing = duration(elapsed)
        left = self._total - self._done
        if left and self._ran:
            timing += f", ~{duration(elapsed / self._ran * left)} left"
        if self.run_started is not None:
            timing += f" | run {duration(now - self.run_started)}"
        counts = f"{self._done}/{self._total} units{volume}, {timing}"
        where = f"{self.context} " if self.context else ""
        if not self.live:
            return f"{where}[{self._label}] {counts}"
        filled = _BAR_WIDTH * self._done // max(self._total, 1)
        bar = "#" * filled + "." * (_BAR_WIDTH - filled)
        return f"{where}[{self._label}] [{bar}] {counts}"

    def _show(self, line: str) -> None:
        if not self.live:
            print(line, file=self.stream, flush=True)
            return
        width = shutil.get_terminal_size((120, 20)).columns
        self.stream.write("\r" + line[: width - 1].ljust(width - 1))
        self.stream.flush()
        self._drawn = True

    def _clear(self) -> None:
        if self._drawn:
            width = shutil.get_terminal_size((120, 20)).columns
            self.stream.write("\r" + " " * (width - 1) + "\r")
            self._drawn = False


class StepProgress:
    """The progress of one pipeline run across its steps: forwards every event, counts the units each step ran.

    A step that ran no unit found its work complete (or has no units: blend resolve); the
    pipeline's summary tells the two apart. Around a ``ConsoleProgress`` it also keeps
    the console's ``context`` (step k of n) up to date.
    """

    def __init__(self, inner: Progress, total_steps: int) -> None:
        self.inner = inner
        self.total_steps = total_steps
        self.units_run = 0
        if isinstance(inner, ConsoleProgress):
            inner.run_started = time.monotonic()

    def begin_step(self, position: int, name: str) -> None:
        self.units_run = 0
        if isinstance(self.inner, ConsoleProgress):
            self.inner.context = f"step {position}/{self.total_steps} {name}"

    def end_run(self) -> None:
        if isinstance(self.inner, ConsoleProgress):
            self.inner.context = ""
            self.inner.run_started = None

    def phase_started(self, label: str, total: int, done: int) -> None:
        self.inner.phase_started(label, total, done)

    def unit_finished(self, label: str, record: dict[str, Any]) -> None:
        self.units_run += 1
        self.inner.unit_finished(label, record)

    def phase_finished(self, label: str) -> None:
        self.inner.phase_finished(label)

    def note(self, text: str) -> None:
        self.inner.note(text)
class TrainConsole:
    """Implements ``corpusmill.trainer.train.TrainReport``: one live line per step on a terminal, periodic lines elsewhere."""

    def __init__(self, stream: TextIO | None = None, interval_s: float = 5.0):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.interval_s = 0.0 if self.live else interval_s
        self._start = time.monotonic()
        self._last = -float("inf")
        self._drawn = False

    def note(self, text: str) -> None:
        if self._drawn:
            self.stream.write("\n")
            self._drawn = False
        print(f"[train] {text}", file=self.stream, flush=True)

    def step(self, metrics: dict[str, Any], last_step: int) -> None:
        now = time.monotonic()
        if now - self._last < self.interval_s and metrics["step"] != last_step:
            return
        self._last = now
        mfu = "" if metrics["mfu"] is None else f" mfu {metrics['mfu']:.1%}"
        line = (
            f"[train] step {metrics['step']}/{last_step} phase {metrics['phase']} loss {metrics['loss']:.4f} "
            f"lr {metrics['lr']:.2e} {metrics['tokens_per_s']:,.0f} tok/s{mfu} "
            f"mem {metrics['max_memory_bytes'] / 2**30:.2f} GiB {now - self._start:,.0f}s"
        )
        if self.live:
            width = shutil.get_terminal_size((120, 20)).columns
            self.stream.write("\r" + line[: width - 1].ljust(width - 1))
            self.stream.flush()
            self._drawn = metrics["step"] != last_step
            if not self._drawn:
                self.stream.write("\n")
        else:
            print(line, file=self.stream, flush=True)
