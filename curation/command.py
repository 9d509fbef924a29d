"""A stage's command: its words, its options declaration and the function that runs it.

Each stage module exports one :class:`StageCommand` (``COMMAND``). The CLI and the
pipeline runner in ``corpusmill.pipelines`` build flags and YAML keys from
``options`` (see :mod:`corpusmill.curation.options`), call ``run`` with the executor
they chose, and show what ``render`` makes of the result. The stage itself never
parses arguments, prints or exits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from corpusmill.curation.executor import Executor

# run(options, executor=..., overwrite=...) -> result
RunFn = Callable[..., Any]


@dataclass(frozen=True)
class StageCommand:
    """What the CLI and pipelines need to know about one stage (or tool) command."""

    words: tuple[str, ...]  # e.g. ("dedup", "exact")
    help: str
    options: type  # a frozen, keyword-only dataclass declared with option()
    run: RunFn
    render: Callable[[Any], str | None] | None = None  # tables the CLI prints after the run

    @property
    def name(self) -> str:
        """The stage as a pipeline step names it: ``dedup exact``."""
        return " ".join(self.words)

    def execute(self, options: Any, executor: Executor, overwrite: bool = False) -> Any:
        return self.run(options, executor=executor, overwrite=overwrite)
