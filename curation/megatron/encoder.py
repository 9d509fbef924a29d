"""SentencePiece encoding of document batches into flat token arrays with document boundaries.

The tokenizer is identified by the sha256 of its ``.model`` file: the same checksum the
tokenizer card records, the tokenized manifest carries and ``blend resolve`` compares.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece

from corpusmill.curation.megatron.indexed import token_dtype
from corpusmill.tokenizer.codec import Codec, ModelError, model_path


@dataclass(frozen=True)
class TokenizerInfo:
    """What the shards depend on: the model file, its checksum and the special tokens used."""

    model_path: str
    sha256: str
    vocab_size: int
    eod_id: int
    bos_id: int | None

    @property
    def dtype(self) -> np.dtype:
        return token_dtype(self.vocab_size)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "dtype": self.dtype.name}


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_processor(path: Path) -> sentencepiece.SentencePieceProcessor:
    try:
        return sentencepiece.SentencePieceProcessor(model_file=str(path))
    except (OSError, RuntimeError) as error:
        raise ModelError(f"{path}: not a SentencePiece model ({error})") from error


def _lossless_codec(path: Path) -> Codec | None:
    """The tokenizer's lossless codec (a literal U+2581 stays itself), for byte-fallback models;
    None for models without byte pieces, which are encoded as SentencePiece does."""
    try:
        return Codec(path)
    except ModelError:
        return None


def describe_tokenizer(path: str | Path, add_bos: bool = False) -> TokenizerInfo:
    """Read the model once to pin its checksum, vocabulary size and special tokens."""
    path = model_path(path).resolve()
    processor = _load_processor(path)
    eod_id, bos_id = processor.eos_id(), processor.bos_id()
    if eod_id < 0:
        raise ModelError(f"{path}: the model has no end-of-document token (eos_id = -1); retrain it with eos_id set")
    if add_bos and bos_id < 0:
        raise ModelError(f"{path}: --bos asked for, but the model has no BOS token (bos_id = -1)")
    return TokenizerInfo(str(path), file_sha256(path), processor.vocab_size(), eod_id, bos_id if add_bos else None)


@dataclass(frozen=True)
class EncodedBatch:
    """A batch's documents as one token array; ``lengths[i]`` is 0 where document i encodes to nothing."""

    tokens: np.ndarray
    lengths: np.ndarray


class DocumentEncoder:
    """Encodes texts as [BOS] tokens EOD per document, with the model loaded once."""

    def __init__(self, info: TokenizerInfo):
        actual = file_sha256(info.model_path)
        if actual != info.sha256:
            raise ModelError(
                f"{info.model_path}: sha256 {actual[:12]}... but the run was started with {info.sha256[:12]}...; "
                "the model file changed (or differs on this node): restore it or re-run with --overwrite"
            )
        self.info = info
        self._processor = _load_processor(Path(info.model_path))
        self._codec = _lossless_codec(Path(info.model_path))

    def encode(self, texts: list[str]) -> EncodedBatch:
        # One thread: parallelism comes from one Ray task per shard, one per core.
        if self._codec is not None:
            pieces = self._codec.encode_batch(texts, num_threads=1)
        else:
            pieces = self._processor.encode(texts, num_threads=1)
        content = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
        specials = 1 + (self.info.bos_id is not None)
        lengths = np.where(content > 0, content + specials, 0)
        tokens = np.empty(int(lengths.sum()), dtype=self.info.dtype)
        ends = np.cumsum(lengths)[content > 0]
        starts = ends - lengths[content > 0]
        is_content = np.ones(len(tokens), dtype=bool)
        is_content[ends - 1] = False
        if self.info.bos_id is not None:
            is_content[starts] = False
            tokens[starts] = self.info.bos_id
        tokens[ends - 1] = self.info.eod_id
        tokens[is_content] = np.fromiter(chain.from_iterable(pieces), dtype=self.info.dtype, count=int(content.sum()))
        return EncodedBatch(tokens, lengths)
