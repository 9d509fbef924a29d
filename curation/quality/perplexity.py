"""CCNet document perplexity from a trained LM directory.

A document is split into lines, each line normalised (:mod:`.normalize`) and cut into pieces;
KenLM scores every line as a sentence (``<s> pieces </s>``), and the document's perplexity is
``10 ** (-sum(log10 p) / sum(pieces + 1))`` over its lines (the ``+ 1`` is ``</s>``), as
CCNet's ``DocLM`` computes it. A document with nothing left after normalisation has no
perplexity (NaN here, null in the output).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from corpusmill.curation.quality.lm_card import LMDirectory
from corpusmill.curation.quality.normalize import normalized_lines


class DocumentScorer:
    """One loaded LM: its piece model and its KenLM binary (loaded once, used for many batches)."""

    def __init__(self, pieces_path: Path, lm_path: Path, threads: int = 1):
        import kenlm
        import sentencepiece as spm

        self.pieces = spm.SentencePieceProcessor(model_file=str(pieces_path), num_threads=threads)
        self.model = kenlm.Model(str(lm_path))

    @classmethod
    def open(cls, directory: LMDirectory, threads: int = 1) -> DocumentScorer:
        return cls(directory.pieces_path, directory.lm_path, threads)

    def piece_lines(self, lines: Sequence[str]) -> list[list[str]]:
        """Each normalised line as its pieces."""
        return self.pieces.encode(list(lines), out_type=str) if lines else []

    def perplexities(self, texts: Sequence[str]) -> np.ndarray:
        """Per document, its CCNet perplexity (float64; NaN where no line survives normalisation)."""
        line_counts = np.zeros(len(texts), dtype=np.int64)
        all_lines: list[str] = []
        for index, text in enumerate(texts):
            lines = normalized_lines(text)
            line_counts[index] = len(lines)
            all_lines.extend(lines)
        score = self.model.score
        log10_sums = np.zeros(len(all_lines))
        lengths = np.zeros(len(all_lines))
        for position, pieces in enumerate(self.piece_lines(all_lines)):
            log10_sums[position] = score(" ".join(pieces), bos=True, eos=True)
            lengths[position] = len(pieces) + 1
        starts = np.concatenate(([0], np.cumsum(line_counts)[:-1]))
        has_lines = line_counts > 0
        doc_log10 = np.zeros(len(texts))
        doc_lengths = np.zeros(len(texts))
        if len(all_lines):
            doc_log10[has_lines] = np.add.reduceat(log10_sums, starts[has_lines])
            doc_lengths[has_lines] = np.add.reduceat(lengths, starts[has_lines])
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(has_lines, np.power(10.0, -doc_log10 / doc_lengths), np.nan)
