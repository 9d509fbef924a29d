"""MinHash signatures of whole Arrow batches, equal to datasketch's ``MinHash``.

datasketch stays the reference: for the same ``num_perm``, ``seed`` and
``scheme``, ``MinHash(num_perm, seed, hashfunc=shingle_hash32, scheme=...)``
updated with a document's shingle strings holds exactly the row that
:meth:`MinHasher.signatures` computes for it (``shingle_hash64`` for
``"affine64"``). The permutation parameters are drawn the way datasketch
draws them, and the arithmetic reproduces its uint32/uint64 wrap-around (and,
for ``"legacy"``, its ``% (2**61 - 1) & (2**32 - 1)``).

The hot path is two compiled passes per batch (scan bytes into shingle
hashes; permute and take minima), with no Python per document or shingle.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numba
import numpy as np
import pyarrow as pa

from corpusmill.curation.dedup.shingles import fmix64, shingle_hashes

SCHEMES = ("affine32", "affine64", "legacy")
MERSENNE_PRIME = np.uint64((1 << 61) - 1)
MAX_HASH32 = np.uint64((1 << 32) - 1)
FMIX32_C1 = np.uint32(0x85EBCA6B)
FMIX32_C2 = np.uint32(0xC2B2AE35)
SHIFT16 = np.uint32(16)
SHIFT13 = np.uint32(13)


@numba.njit(cache=True, inline="always")
def _fmix32(value):
    value ^= value >> SHIFT16
    value = np.uint32(value * FMIX32_C1)
    value ^= value >> SHIFT13
    value = np.uint32(value * FMIX32_C2)
    return value ^ (value >> SHIFT16)


@numba.njit(cache=True)
def _premix32(shingle_hashes):
    """The 32-bit schemes' input: low 32 bits of the shingle hash, through fmix32."""
    mixed = np.empty(shingle_hashes.shape[0], dtype=np.uint32)
    for k in range(shingle_hashes.shape[0]):
        mixed[k] = _fmix32(np.uint32(shingle_hashes[k] & MAX_HASH32))
    return mixed


@numba.njit(cache=True)
def _premix64(shingle_hashes):
    mixed = np.empty_like(shingle_hashes)
    for k in range(shingle_hashes.shape[0]):
        mixed[k] = fmix64(shingle_hashes[k])
    return mixed


# The loops run over a document's shingles inside each permutation: a
# min-reduction over a slice that LLVM vectorises, with the permutation held in
# registers. (Written with ``if`` rather than ``min`` on purpose: that form
# vectorises, measured ~15x faster.)


@numba.njit(cache=True)
def _min_affine32(mixed, offsets, mult, add, signatures):
    """signature[p] = min over shingles of (a_p * h + b_p) mod 2^32."""
    for doc in range(offsets.shape[0] - 1):
        shingles = mixed[offsets[doc] : offsets[doc + 1]]
        row = signatures[doc]
        for perm in range(row.shape[0]):
            mult_p, add_p, smallest = mult[perm], add[perm], row[perm]
            for k in range(shingles.shape[0]):
                permuted = np.uint32(mult_p * shingles[k] + add_p)
                if permuted < smallest:
                    smallest = permuted
            row[perm] = smallest
    return signatures


@numba.njit(cache=True)
def _min_affine64(mixed, offsets, mult, add, signatures):
    """signature[p] = min over shingles of (a_p * h + b_p) mod 2^64."""
    for doc in range(offsets.shape[0] - 1):
        shingles = mixed[offsets[doc] : offsets[doc + 1]]
        row = signatures[doc]
        for perm in range(row.shape[0]):
            mult_p, add_p, smallest = mult[perm], add[perm], row[perm]
            for k in range(shingles.shape[0]):
                permuted = mult_p * shingles[k] + add_p
                if permuted < smallest:
                    smallest = permuted
            row[perm] = smallest
    return signatures


@numba.njit(cache=True)
def _min_legacy(shingle_hashes, offsets, mult, add, signatures):
    """datasketch < 2.0: ((a_p * h + b_p) mod 2^64 mod (2^61 - 1)) & (2^32 - 1)."""
    for doc in range(offsets.shape[0] - 1):
        shingles = shingle_hashes[offsets[doc] : offsets[doc + 1]]
        row = signatures[doc]
        for perm in range(row.shape[0]):
            mult_p, add_p, smallest = mult[perm], add[perm], row[perm]
            for k in range(shingles.shape[0]):
                permuted = ((mult_p * (shingles[k] & MAX_HASH32) + add_p) % MERSENNE_PRIME) & MAX_HASH32
                if permuted < smallest:
                    smallest = permuted
            row[perm] = smallest
    return signatures


@dataclass(frozen=True)
class MinHasher:
    """MinHash over word n-gram shingles with datasketch's permutations."""

    num_perm: int = 128
    seed: int = 1
    ngram: int = 5
    scheme: str = "affine32"

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {self.scheme!r}")
        if self.num_perm < 1 or self.ngram < 1:
            raise ValueError(f"num_perm and ngram must be positive, got {self.num_perm} and {self.ngram}")

    @property
    def dtype(self) -> type[np.unsignedinteger]:
        return np.uint32 if self.scheme == "affine32" else np.uint64

    @property
    def empty_value(self) -> int:
        """Signature value of a document with no shingles (datasketch's initial value)."""
        return int(np.iinfo(self.dtype).max) if self.scheme != "legacy" else int(MAX_HASH32)

    @cached_property
    def permutations(self) -> tuple[np.ndarray, np.ndarray]:
        """(a, b) exactly as ``datasketch.MinHash._init_permutations`` draws them."""
        generator = np.random.RandomState(self.seed)
        if self.scheme == "legacy":
            pairs = [
                (
                    generator.randint(1, MERSENNE_PRIME, dtype=np.uint64),
                    generator.randint(0, MERSENNE_PRIME, dtype=np.uint64),
                )
                for _ in range(self.num_perm)
            ]
            mult, add = np.array(pairs, dtype=np.uint64).T
            return np.ascontiguousarray(mult), np.ascontiguousarray(add)
        width = 32 if self.scheme == "affine32" else 64
        dtype = self.dtype
        mult = generator.randint(0, 1 << (width - 1), self.num_perm, dtype=dtype) * dtype(2) + dtype(1)
        add = generator.randint(0, 1 << width, self.num_perm, dtype=dtype)
        return mult, add

    def signatures(self, texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """One signature row per document, shape (len(texts), num_perm)."""
        return self.signatures_of_hashes(*shingle_hashes(texts, self.ngram))

    def signatures_of_hashes(self, hashes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Signatures from flat shingle hashes and per-document offsets (see ``shingle_hashes``)."""
        signatures = np.full((len(offsets) - 1, self.num_perm), self.empty_value, dtype=self.dtype)
        mult, add = self.permutations
        if self.scheme == "legacy":
            return _min_legacy(hashes, offsets, mult, add, signatures)
        if self.scheme == "affine32":
            return _min_affine32(_premix32(hashes), offsets, mult, add, signatures)
        return _min_affine64(_premix64(hashes), offsets, mult, add, signatures)
