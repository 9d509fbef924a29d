"""The executor protocol: how a stage's units get run, decided by whoever calls the stage.

A stage never picks its engine. It is handed an :class:`Executor`, maps a unit function
over a phase's units with it, and gets the results back in unit order. Production runs
hand it the Ray executor (``corpusmill.pipelines.execution.RayExecutor``); tests and
small in-process jobs hand it :class:`SerialExecutor`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from corpusmill.curation.progress import Progress, SilentProgress

Unit = dict[str, Any]
UnitFn = Callable[[Unit], dict[str, Any]]


class Executor(Protocol):
    """Maps a unit function over units; results come back in unit order."""

    progress: Progress

    def map(self, units: Sequence[Unit], fn: UnitFn, *, label: str, num_cpus: float = 1.0) -> list[dict[str, Any]]:
        """Run ``fn`` on every unit (a JSON-able dict), reporting each finished unit to ``progress``."""
        ...


class SerialExecutor:
    """Runs every unit in this process, one after another: the stages' logic without an engine."""

    def __init__(self, progress: Progress | None = None) -> None:
        self.progress = progress or SilentProgress()

    def map(self, units: Sequence[Unit], fn: UnitFn, *, label: str, num_cpus: float = 1.0) -> list[dict[str, Any]]:
        results = []
        for unit in units:
            result = fn(unit)
            self.progress.unit_finished(label, result)
            results.append(result)
        return results
