"""One unit's tokens, routed into one part (a small indexed dataset) per component it meets.

Parts live in the stage's scratch directory and are named ``{unit_id}-{n:04d}`` so a
re-run of an interrupted unit finds and deletes them; the merge phase concatenates each
component's parts, in unit order, into its final prefix.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np

from corpusmill.curation.megatron.indexed import IndexedWriter


class ComponentParts:
    """Writers for the components one unit meets, opened on first use."""

    def __init__(self, directory: Path, unit_id: str, dtype: np.dtype, key_names: tuple[str, ...]):
        self.directory = directory
        self.unit_id = unit_id
        self.dtype = dtype
        self.key_names = key_names
        self._writers: dict[tuple[str, ...], IndexedWriter] = {}
        self._text_bytes: dict[tuple[str, ...], int] = {}
        self._stack = ExitStack()

    def __enter__(self) -> Self:
        self._stack.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> bool | None:
        return self._stack.__exit__(exc_type, exc, traceback)

    def add(
        self, components: list[tuple[str, ...]], tokens: np.ndarray, lengths: np.ndarray, text_sizes: np.ndarray
    ) -> None:
        """Route documents (flat ``tokens``, per-document ``lengths``) to their components' parts, order kept."""
        distinct = list(dict.fromkeys(components))
        if len(distinct) == 1:
            self._write(distinct[0], tokens, lengths, int(text_sizes.sum()))
            return
        code_of = {component: code for code, component in enumerate(distinct)}
        codes = np.fromiter((code_of[c] for c in components), dtype=np.int64, count=len(components))
        order = np.argsort(codes, kind="stable")
        sorted_lengths = lengths[order]
        starts = np.cumsum(lengths) - lengths
        sorted_starts = np.cumsum(sorted_lengths) - sorted_lengths
        gather = np.repeat(starts[order] - sorted_starts, sorted_lengths) + np.arange(int(lengths.sum()))
        grouped = tokens[gather]
        doc_bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(distinct)))])
        token_bounds = np.concatenate([[0], np.cumsum(sorted_lengths)])
        sorted_sizes = text_sizes[order]
        for code, component in enumerate(distinct):
            first, last = doc_bounds[code], doc_bounds[code + 1]
            self._write(
                component,
                grouped[token_bounds[first] : token_bounds[last]],
                sorted_lengths[first:last],
                int(sorted_sizes[first:last].sum()),
            )

    def records(self, root: Path) -> list[dict[str, Any]]:
        """What each part holds, with its prefix relative to ``root``; call after the context closed."""
        return [
            {
                "keys": dict(zip(self.key_names, component)),
                "part": str(writer.prefix.relative_to(root)),
                "documents": writer.documents,
                "tokens": writer.tokens,
                "text_bytes": self._text_bytes[component],
            }
            for component, writer in self._writers.items()
        ]

    def _write(self, component: tuple[str, ...], tokens: np.ndarray, lengths: np.ndarray, text_bytes: int) -> None:
        if component not in self._writers:
            prefix = self.directory / f"{self.unit_id}-{len(self._writers):04d}"
            self._writers[component] = self._stack.enter_context(IndexedWriter(prefix, self.dtype))
            self._text_bytes[component] = 0
        self._writers[component].add_documents(tokens, lengths)
        self._text_bytes[component] += text_bytes
