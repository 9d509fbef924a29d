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

# What a command is, which decides where it may be used and which common flags it takes.
STAGE = "stage"  # a stage: a CLI command and a pipeline step; takes --ray-address, --num-cpus, --overwrite
DRIVER = "driver"  # runs stages (run, demo): takes those flags, but is not a pipeline step
TOOL = "tool"  # talks to a cluster or reads outputs (submit, jobs, report): neither
KINDS = (STAGE, DRIVER, TOOL)


@dataclass(frozen=True)
class StageCommand:
    """What the CLI and pipelines need to know about one stage (or tool) command."""

    words: tuple[str, ...]  # e.g. ("dedup", "exact")
    help: str
    options: type  # a frozen, keyword-only dataclass declared with option()
    run: RunFn
    render: Callable[[Any], str | None] | None = None  # tables the CLI prints after the run
    kind: str = STAGE

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def name(self) -> str:
        """The stage as a pipeline step names it: ``dedup exact``."""
        return " ".join(self.words)

    @property
    def pipeline_step(self) -> bool:
        return self.kind == STAGE

    @property
    def uses_executor(self) -> bool:
        """Whether it runs units (and so takes the executor's flags)."""
        return self.kind != TOOL

    def execute(self, options: Any, executor: Executor, overwrite: bool = False) -> Any:
        return self.run(options, executor=executor, overwrite=overwrite)
