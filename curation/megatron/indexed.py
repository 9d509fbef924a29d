"""Megatron-LM's indexed dataset format, writer and reader side by side.

A *prefix* names two files. ``PREFIX.bin`` holds every sequence's tokens back to back
(little-endian, one dtype). ``PREFIX.idx`` is::

    magic              9 bytes  b"MMIDIDX\\x00\\x00"
    version            uint64   1
    dtype code         uint8    see DTYPE_CODES (uint16 = 8, int32 = 4)
    sequence count     uint64   S
    document count     uint64   D + 1
    sequence lengths   int32[S]      tokens per sequence
    sequence pointers  int64[S]      byte offset of each sequence in .bin
    document indices   int64[D + 1]  0, then the sequence count after each document

corpusmill writes one sequence per document (its tokens, then end-of-document), as
Megatron's ``tools/preprocess_data.py`` does without sentence splitting, and chooses
uint16 below 65,500 vocabulary entries, else int32, as Megatron's ``DType.optimal_dtype``.
"""

from __future__ import annotations

import shutil
import struct
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np

from corpusmill.curation.atomic import atomic_path
from corpusmill.curation.errors import CorpusmillError

INDEX_MAGIC = b"MMIDIDX\x00\x00"
INDEX_VERSION = 1
UINT16_VOCAB_LIMIT = 65_500
DTYPE_CODES = {
    np.dtype(np.uint8): 1,
    np.dtype(np.int8): 2,
    np.dtype(np.int16): 3,
    np.dtype(np.int32): 4,
    np.dtype(np.int64): 5,
    np.dtype(np.float64): 6,
    np.dtype(np.float32): 7,
    np.dtype(np.uint16): 8,
}
_HEADER = struct.Struct("<9sQBQQ")


class IndexedFormatError(CorpusmillError, ValueError):
    """A file is not a readable Megatron indexed dataset; the message names it."""


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size < UINT16_VOCAB_LIMIT else np.dtype(np.int32)


def bin_path(prefix: str | Path) -> Path:
    return Path(f"{prefix}.bin")


def idx_path(prefix: str | Path) -> Path:
    return Path(f"{prefix}.idx")


class IndexedWriter:
    """Writes one prefix; both files are renamed into place on a clean exit, .idx last,
    so a present .idx always describes a complete .bin. On error neither file appears."""

    def __init__(self, prefix: str | Path, dtype: np.dtype):
        if np.dtype(dtype) not in DTYPE_CODES:
            raise IndexedFormatError(f"{prefix}: dtype {dtype} has no Megatron code")
        self.prefix = Path(prefix)
        self.dtype = np.dtype(dtype)
        self._sequence_lengths: list[np.ndarray] = []
        self._document_ends: list[np.ndarray] = []
        self._sequences = 0
        self._stack = ExitStack()

    @property
    def documents(self) -> int:
        return sum(len(ends) for ends in self._document_ends)

    @property
    def tokens(self) -> int:
        return int(sum(int(lengths.sum()) for lengths in self._sequence_lengths))

    def __enter__(self) -> Self:
        # Entered first, renamed last: the .idx appears only after the .bin.
        self._idx_tmp = self._stack.enter_context(atomic_path(idx_path(self.prefix)))
        bin_tmp = self._stack.enter_context(atomic_path(bin_path(self.prefix)))
        self._bin = self._stack.enter_context(open(bin_tmp, "wb"))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> bool | None:
        if exc_type is None:
            try:
                self._bin.flush()
                self._write_index(self._idx_tmp)
            except BaseException as error:
                self._stack.__exit__(type(error), error, error.__traceback__)
                raise
        return self._stack.__exit__(exc_type, exc, traceback)

    def add_documents(self, tokens: np.ndarray, lengths: np.ndarray) -> None:
        """Append documents given as one flat token array and each document's length."""
        lengths = np.asarray(lengths, dtype=np.int64)
        if int(lengths.sum()) != len(tokens):
            raise ValueError(f"lengths sum to {int(lengths.sum())} but {len(tokens)} tokens were given")
        if len(lengths) == 0:
            return
        self._bin.write(np.ascontiguousarray(tokens, dtype=self.dtype).tobytes())
        self._append_index(lengths.astype(np.int32), np.arange(1, len(lengths) + 1, dtype=np.int64))

    def append_prefix(self, prefix: str | Path) -> None:
        """Append every document of another prefix with the same dtype (a byte copy)."""
        other = IndexedReader(prefix)
        if other.dtype != self.dtype:
            raise IndexedFormatError(f"{prefix}: dtype {other.dtype} differs from {self.dtype} of {self.prefix}")
        with open(bin_path(prefix), "rb") as source:
            shutil.copyfileobj(source, self._bin, 16 * 2**20)
        self._append_index(np.array(other.sequence_lengths), np.array(other.document_indices[1:]))

    def _append_index(self, sequence_lengths: np.ndarray, document_ends: np.ndarray) -> None:
        self._sequence_lengths.append(sequence_lengths)
        self._document_ends.append(document_ends + self._sequences)
        self._sequences += len(sequence_lengths)

    def _write_index(self, path: Path) -> None:
        lengths = np.concatenate([np.zeros(0, np.int32), *self._sequence_lengths])
        pointers = np.zeros(len(lengths), dtype=np.int64)
        np.cumsum(lengths[:-1].astype(np.int64) * self.dtype.itemsize, out=pointers[1:])
        document_indices = np.concatenate([np.zeros(1, np.int64), *self._document_ends])
        with open(path, "wb") as index:
            index.write(
                _HEADER.pack(INDEX_MAGIC, INDEX_VERSION, DTYPE_CODES[self.dtype], len(lengths), len(document_indices))
            )
            index.write(lengths.tobytes())
            index.write(pointers.tobytes())
            index.write(document_indices.tobytes())


class IndexedReader:
    """Memory-mapped read access to one prefix, for checks, merges and trainers."""

    def __init__(self, prefix: str | Path):
        self.prefix = Path(prefix)
        path = idx_path(prefix)
        if not path.is_file():
            raise IndexedFormatError(f"{path}: no such index file")
        index = np.memmap(path, dtype=np.uint8, mode="r")
        if len(index) < _HEADER.size:
            raise IndexedFormatError(f"{path}: truncated header")
        magic, version, code, sequences, documents = _HEADER.unpack(index[: _HEADER.size].tobytes())
        codes = {code: dtype for dtype, code in DTYPE_CODES.items()}
        if magic != INDEX_MAGIC or version != INDEX_VERSION or code not in codes:
            raise IndexedFormatError(f"{path}: not a Megatron indexed dataset (magic {magic!r}, version {version})")
        self.dtype = codes[code]
        expected = _HEADER.size + sequences * 12 + documents * 8
        if len(index) != expected:
            raise IndexedFormatError(f"{path}: {len(index)} bytes, header says {expected}; the file is damaged")
        offset = _HEADER.size
        self.sequence_lengths = np.frombuffer(index, np.int32, sequences, offset)
        self.sequence_pointers = np.frombuffer(index, np.int64, sequences, offset + 4 * sequences)
        self.document_indices = np.frombuffer(index, np.int64, documents, offset + 12 * sequences)
        self._tokens: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.sequence_lengths)

    @property
    def num_documents(self) -> int:
        return len(self.document_indices) - 1

    @property
    def num_tokens(self) -> int:
        return int(self.sequence_lengths.sum(dtype=np.int64))

    @property
    def tokens(self) -> np.ndarray:
        """Every token of the prefix, back to back: a read-only memory map of ``.bin``, not a copy."""
        if self._tokens is None:
            self._tokens = self._map_tokens()
        return self._tokens

    @property
    def sequence_starts(self) -> np.ndarray:
        """Where each sequence starts in :attr:`tokens` (its byte pointer over the token size)."""
        return self.sequence_pointers // self.dtype.itemsize

    def sequence(self, index: int) -> np.ndarray:
        start = int(self.sequence_pointers[index]) // self.dtype.itemsize
        return self.tokens[start : start + int(self.sequence_lengths[index])]

    def _map_tokens(self) -> np.ndarray:
        path = bin_path(self.prefix)
        expected = self.num_tokens * self.dtype.itemsize
        size = path.stat().st_size if path.is_file() else None
        if size != expected:
            raise IndexedFormatError(f"{path}: {size} bytes, index says {expected}; the prefix is damaged or mixed")
        if expected == 0:
            return np.zeros(0, self.dtype)
        return np.memmap(path, dtype=self.dtype, mode="r")
