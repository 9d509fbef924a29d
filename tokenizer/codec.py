"""Encode and decode with a trained model, exactly: ``decode(encode(text)) == text`` for any string.

Why a wrapper: SentencePiece writes spaces as U+2581 (``▁``) inside pieces, so a literal
``▁`` in the input would come back as a space. We encode each literal ``▁`` as its three
UTF-8 byte-fallback pieces, which SentencePiece decodes verbatim; every other character
goes through the model unchanged. Anything that tokenizes for training must use this codec
so ids mean the same thing everywhere.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import sentencepiece as spm

from corpusmill.curation.errors import CorpusmillError

SPACE_SYMBOL = "\u2581"
MODEL_FILE = "tokenizer.model"


class ModelError(CorpusmillError, ValueError):
    """A tokenizer model cannot be used as asked; the message says the fix."""


def model_path(path: str | Path) -> Path:
    """A model file, or a `corpusmill tokenizer train` output directory holding one."""
    path = Path(path)
    candidate = path / MODEL_FILE if path.is_dir() else path
    if not candidate.is_file():
        raise ModelError(f"{path}: no {MODEL_FILE} here; pass a `corpusmill tokenizer train` output or a .model file")
    return candidate


class Codec:
    """A SentencePiece model with byte fallback, made lossless for every Unicode string."""

    def __init__(self, path: str | Path):
        self.path = model_path(path)
        self.processor = spm.SentencePieceProcessor(model_file=str(self.path))
        space_bytes = SPACE_SYMBOL.encode()
        self.space_symbol_ids = [self.processor.piece_to_id(f"<0x{byte:02X}>") for byte in space_bytes]
        if any(self.processor.is_unknown(i) for i in self.space_symbol_ids):
            raise ModelError(f"{self.path} has no byte-fallback pieces; train it with `corpusmill tokenizer train`")

    @property
    def vocab_size(self) -> int:
        return self.processor.get_piece_size()

    @cached_property
    def byte_piece_mask(self) -> np.ndarray:
        """True at the ids of the 256 byte-fallback pieces."""
        return np.array([self.processor.is_byte(i) for i in range(self.vocab_size)], dtype=bool)

    def encode(self, text: str) -> list[int]:
        if SPACE_SYMBOL not in text:
            return self.processor.encode(text)
        ids: list[int] = []
        for number, segment in enumerate(text.split(SPACE_SYMBOL)):
            if number:
                ids += self.space_symbol_ids
            if segment:
                ids += self.processor.encode(segment)
        return ids

    def encode_batch(self, texts: list[str], num_threads: int = 0) -> list[list[int]]:
        """Many texts at once; SentencePiece's batch path uses ``num_threads`` (0: all cores)."""
        plain = [SPACE_SYMBOL not in text for text in texts]
        batch = self.processor.encode([t for t, p in zip(texts, plain) if p], num_threads=num_threads)
        results = iter(batch)
        return [next(results) if p else self.encode(t) for t, p in zip(texts, plain)]

    def decode(self, ids: list[int]) -> str:
        return self.processor.decode(ids)

    def pieces(self, text: str) -> list[str]:
        return [self.processor.id_to_piece(i) for i in self.encode(text)]
