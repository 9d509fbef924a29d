"""A trained language-model directory (``corpusmill lm train``'s output) and its card.

Layout::

    lm.binary      KenLM binary (build_binary) of an n-gram model over SentencePiece pieces
    pieces.model   the SentencePiece model the n-grams are over
    card.json      this module's format, written last: its presence means the directory is complete

The card says what the model is for (``language``), how it was made (order, piece count,
lmplz / build_binary command lines, cost) and what it was made from (corpus documents, bytes
and fingerprint), and carries the perplexity distribution that ``corpusmill quality`` takes
its default cut-offs from: ``ppl_percentiles`` (percentiles 0..100) of documents of the
training corpus held out of the model, plus ``train_ppl_percentiles``, the same over
documents the model was trained on (lower: an n-gram model knows its own training text).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from corpusmill.curation.errors import CorpusmillError, MissingFileError

STAGE = "lm_train"
LM_FILE = "lm.binary"
PIECES_FILE = "pieces.model"
CARD_FILE = "card.json"
PERCENTILES = 101  # 0, 1, ..., 100


class LMCardError(CorpusmillError, ValueError):
    """A directory is not a complete `corpusmill lm train` output; the message says which part."""


_FIX = "pass a directory written by `corpusmill lm train`"


@dataclass(frozen=True)
class LMCard:
    """One trained LM's card, as written and read."""

    stage: str
    config: dict[str, Any]
    language: str
    order: int
    pieces: int
    normalization: str
    corpus: dict[str, Any]  # inputs, fingerprint, documents, bytes, lines (what the LM was trained on)
    held_out: dict[str, Any]  # documents and bytes kept out of the LM, how many were scored
    ppl_percentiles: list[float]  # held-out documents' perplexities at percentiles 0..100
    train_ppl_percentiles: list[float]  # training documents' perplexities at percentiles 0..100
    training: dict[str, Any]  # per step: command line, wall seconds, peak resident memory
    lm_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def cutoffs(self, head_percentile: float, tail_percentile: float) -> tuple[float, float]:
        """The perplexities at the two percentiles: below the first is head, above the second tail."""
        return percentile_cutoffs(np.asarray(self.ppl_percentiles), head_percentile, tail_percentile)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> LMCard:
        if not isinstance(data, dict) or data.get("stage") != STAGE:
            raise LMCardError(f"{where}: not an LM card; {_FIX}")
        missing = [field.name for field in fields(cls) if field.name not in data]
        if missing:
            raise LMCardError(f"{where}: missing {', '.join(missing)}; {_FIX}")
        for name in ("ppl_percentiles", "train_ppl_percentiles"):
            values = data[name]
            if not isinstance(values, list) or len(values) != PERCENTILES or np.any(np.diff(values) < 0):
                raise LMCardError(f"{where}: `{name}` must list {PERCENTILES} non-decreasing perplexities; {_FIX}")
        return cls(**{field.name: data[field.name] for field in fields(cls)})


def percentile_cutoffs(percentiles: np.ndarray, head_percentile: float, tail_percentile: float) -> tuple[float, float]:
    """Interpolate a 0..100 percentile table at two percentiles (CCNet's head / tail cut-offs)."""
    grid = np.linspace(0.0, 100.0, len(percentiles))
    head, tail = np.interp([head_percentile, tail_percentile], grid, percentiles)
    return float(head), float(tail)


@dataclass(frozen=True)
class LMDirectory:
    """A complete LM directory: its card and the two model files it names."""

    root: Path
    card: LMCard

    @property
    def lm_path(self) -> Path:
        return self.root / LM_FILE

    @property
    def pieces_path(self) -> Path:
        return self.root / PIECES_FILE

    @classmethod
    def open(cls, path: str | Path) -> LMDirectory:
        root = Path(path).resolve()
        card_path = root / CARD_FILE
        if not card_path.is_file():
            raise MissingFileError(f"{root}: no {CARD_FILE} (the LM is missing or unfinished); {_FIX}")
        try:
            data = json.loads(card_path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise LMCardError(f"{card_path}: not JSON ({error}); {_FIX}") from None
        directory = cls(root, LMCard.from_dict(data, str(card_path)))
        for model_file in (directory.lm_path, directory.pieces_path):
            if not model_file.is_file():
                raise MissingFileError(f"{root}: {model_file.name} is missing; {_FIX}")
        return directory

    def identity(self) -> dict[str, Any]:
        """What a stage scoring with this LM records, so a re-trained LM in the same place is noticed."""
        return {
            "path": str(self.root),
            "language": self.card.language,
            "config": self.card.config,
            "corpus_fingerprint": self.card.corpus["fingerprint"],
            "lm_bytes": self.card.lm_bytes,
        }
