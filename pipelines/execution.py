"""Ray integration: start or join a cluster, and run a stage's units through Ray Data.

A unit is a small JSON-able dict (one input shard, one hash partition, ...). Units
become the rows of a Ray Data dataset, one block each, and are mapped by a plain
function; Ray does the scheduling, retries of lost workers and back-pressure.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

Unit = dict[str, Any]
UnitFn = Callable[[Unit], dict[str, Any]]

_PACKAGES = ("curation", "pipelines", "tokenizer", "trainer")
# Where the CLI asked Ray to run; read when a stage first needs Ray, so commands that
# fail early or find their work already done never pay Ray's start-up.
_REQUESTED: dict[str, Any] = {"address": None, "num_cpus": None}


def configure_ray(address: str | None, num_cpus: int | None) -> None:
    _REQUESTED.update(address=address, num_cpus=num_cpus)


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start an embedded Ray, or connect to ``address`` / ``RAY_ADDRESS``; idempotent.

    When joining an existing cluster the driver ships its own copy of corpusmill's
    packages to the workers, so a cluster needs only the third-party dependencies.
    """
    import ray

    if ray.is_initialized():
        return
    address = address or _REQUESTED["address"] or os.environ.get("RAY_ADDRESS")
    num_cpus = num_cpus or _REQUESTED["num_cpus"]
    if address:
        modules = [sys.modules[name] for name in _PACKAGES if _importable(name)]
        ray.init(address=address, runtime_env={"py_modules": modules}, logging_level=logging.WARNING)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING)
    _quiet_ray_data()


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def _quiet_ray_data() -> None:
    from ray.data import DataContext

    logging.getLogger("ray.data").setLevel(logging.WARNING)
    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False


class Progress:
    """One line per few seconds on stderr: units done, documents and MB processed, rate."""

    def __init__(self, label: str, total: int, interval_s: float = 2.0):
        self.label, self.total, self.interval_s = label, total, interval_s
        self.done = self.docs = self.nbytes = 0
        self.start = self._last = time.monotonic()

    def update(self, record: dict[str, Any]) -> None:
        self.done += 1
        stats = record.get("stats", {}).get("in", {})
        self.docs += stats.get("docs", 0)
        self.nbytes += stats.get("bytes", 0)
        now = time.monotonic()
        if now - self._last >= self.interval_s or self.done == self.total:
            self._last = now
            self.report(now)

    def report(self, now: float) -> None:
        elapsed = max(now - self.start, 1e-9)
        volume = ""
        if self.docs:
            volume = f", {self.docs:,} docs, {self.nbytes / 1e6:,.1f} MB, {self.nbytes / 1e6 / elapsed:,.1f} MB/s"
        print(f"[{self.label}] {self.done}/{self.total} units{volume}, {elapsed:,.0f}s", file=sys.stderr, flush=True)


def _pack_error(error: Exception) -> bytes:
    trace = traceback.format_exc()
    try:
        return pickle.dumps((error, trace))
    except Exception:
        return pickle.dumps((RuntimeError(f"{type(error).__name__}: {error}"), trace))


def _unpack_error(packed: bytes) -> Exception:
    error, trace = pickle.loads(packed)
    error.add_note(f"(raised in a Ray worker)\n{trace}")
    return error


def run_tasks(units: Sequence[Unit], fn: UnitFn, *, label: str, num_cpus: float = 1.0) -> list[dict[str, Any]]:
    """Map ``fn`` over ``units`` with Ray Data; return the results in unit order."""
    if not units:
        return []
    import ray

    ensure_ray()

    def apply(row: dict[str, Any]) -> dict[str, Any]:
        # JSON keeps Ray Data from inferring (and unifying) Arrow schemas of free-form dicts.
        try:
            return {"index": row["index"], "result": json.dumps(fn(json.loads(row["unit"]))), "error": b""}
        except Exception as error:  # re-raised on the driver as itself, not as Ray's wrapper
            return {"index": row["index"], "result": "", "error": _pack_error(error)}

    rows = [{"index": i, "unit": json.dumps(unit)} for i, unit in enumerate(units)]
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map(apply, num_cpus=num_cpus)
    progress = Progress(label, len(rows))
    results: list[dict[str, Any] | None] = [None] * len(rows)
    for row in dataset.iter_rows():
        if row["error"]:
            raise _unpack_error(row["error"])
        result = json.loads(row["result"])
        results[row["index"]] = result
        progress.update(result)
    return [result for result in results if result is not None]
