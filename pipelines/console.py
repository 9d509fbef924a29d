"""The CLI's rendering of stage progress: a live bar on a terminal, periodic lines elsewhere."""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, TextIO

_BAR_WIDTH = 24


class ConsoleProgress:
    """Implements ``corpusmill.curation.progress.Progress`` for a person watching stderr.

    On a terminal the current phase is one line redrawn in place (units, documents, MB,
    rate, elapsed time); in a log (CI, a file, Ray job logs) it prints a line every
    ``interval_s`` seconds and when the phase completes.
    """

    def __init__(self, stream: TextIO | None = None, interval_s: float = 2.0, prefix: str = ""):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.interval_s = 0.1 if self.live else interval_s
        self.prefix = prefix  # e.g. "step 3/9 " when a pipeline runs several stages
        self._label = ""
        self._total = self._done = self._docs = self._bytes = 0
        self._start = self._last = time.monotonic()
        self._drawn = False

    def phase_started(self, label: str, total: int, done: int) -> None:
        self._label, self._total, self._done = label, total, done
        self._docs = self._bytes = 0
        self._start = self._last = time.monotonic()

    def unit_finished(self, label: str, record: dict[str, Any]) -> None:
        self._done += 1
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
        print(text, file=self.stream, flush=True)

    def _line(self, now: float) -> str:
        elapsed = max(now - self._start, 1e-9)
        volume = ""
        if self._docs:
            mb = self._bytes / 1e6
            volume = f", {self._docs:,} docs, {mb:,.1f} MB, {mb / elapsed:,.1f} MB/s"
        counts = f"{self._done}/{self._total} units{volume}, {elapsed:,.0f}s"
        if not self.live:
            return f"{self.prefix}[{self._label}] {counts}"
        filled = _BAR_WIDTH * self._done // max(self._total, 1)
        bar = "#" * filled + "." * (_BAR_WIDTH - filled)
        return f"{self.prefix}[{self._label}] [{bar}] {counts}"

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
