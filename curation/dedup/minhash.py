"""MinHash signatures of whole Arrow batches, equal to datasketch's ``MinHash``.

datasketch stays the reference: for the same ``num_perm``, ``seed`` and
``scheme``, ``MinHash(num_perm, seed, hashfunc=shingle_hash32, scheme=...)``
updated with a document's shingle strings holds exactly the row that
:meth:`MinHasher.signatures` computes for it (``shingle_hash64`` for
``"affine64"``). The permutation parameters are drawn the way datasketch
draws them, and the arithmetic reproduces its uint32/uint64 wrap-around (and,
for ``"legacy"``, its ``% (2**61 - 1) & (2**32 - 1)``).

The hot path is one compiled pass per batch: scan bytes, hash words, fold
shingles, permute and take minima, with no Python per document or shingle.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numba
import numpy as np
import pyarrow as pa

from curation.dedup.shingles import doc_shingle_hashes, fmix64, max_shingles, text_buffers
from curation.dedup.text_norm import separator_table

SCHEMES = ("affine32", "affine64", "legacy")
MERSENNE_PRIME = np.uint64((1 << 61) - 1)
MAX_HASH32 = np.uint64((1 << 32) - 1)
FMIX32_C1 = np.uint32(0x85EBCA6B)
FMIX32_C2 = np.uint32(0xC2B2AE35)
SHIFT16 = np.uint32(16)
SHIFT13 = np.uint32(13)


@numba.njit(inline="always")
def _fmix32(value):
    value ^= value >> SHIFT16
    value = np.uint32(value * FMIX32_C1)
    value ^= value >> SHIFT13
    value = np.uint32(value * FMIX32_C2)
    return value ^ (value >> SHIFT16)


# Each update folds one document's shingle hashes into its signature row. The
# loop runs over shingles inside each permutation, a min-reduction that LLVM
# vectorises with the permutation parameters held in registers.


@numba.njit(inline="always")
def _update_affine32(row, mult, add, shingle_hashes, scratch):
    count = shingle_hashes.shape[0]
    for k in range(count):
        scratch[k] = _fmix32(np.uint32(shingle_hashes[k] & MAX_HASH32))
    for perm in range(row.shape[0]):
        mult_p, add_p = mult[perm], add[perm]
        smallest = row[perm]
        for k in range(count):
            smallest = min(smallest, np.uint32(mult_p * scratch[k] + add_p))
        row[perm] = smallest


@numba.njit(inline="always")
def _update_affine64(row, mult, add, shingle_hashes, scratch):
    count = shingle_hashes.shape[0]
    for k in range(count):
        scratch[k] = fmix64(shingle_hashes[k])
    for perm in range(row.shape[0]):
        mult_p, add_p = mult[perm], add[perm]
        smallest = row[perm]
        for k in range(count):
            smallest = min(smallest, mult_p * scratch[k] + add_p)
        row[perm] = smallest


@numba.njit(inline="always")
def _update_legacy(row, mult, add, shingle_hashes, scratch):
    count = shingle_hashes.shape[0]
    for perm in range(row.shape[0]):
        mult_p, add_p = mult[perm], add[perm]
        smallest = row[perm]
        for k in range(count):
            permuted = ((mult_p * (shingle_hashes[k] & MAX_HASH32) + add_p) % MERSENNE_PRIME) & MAX_HASH32
            smallest = min(smallest, permuted)
        row[perm] = smallest


def _signature_kernel(update):
    @numba.njit
    def kernel(data, offsets, ngram, is_separator, mult, add, signatures):
        ring = np.empty(ngram, dtype=np.uint64)
        bound = max_shingles(offsets)
        shingle_hashes = np.empty(bound, dtype=np.uint64)
        scratch = np.empty(bound, dtype=signatures.dtype)
        for doc in range(offsets.shape[0] - 1):
            count = doc_shingle_hashes(data, offsets[doc], offsets[doc + 1], ngram, is_separator, ring, shingle_hashes)
            update(signatures[doc], mult, add, shingle_hashes[:count], scratch)
        return signatures

    return kernel


_KERNELS = {
    "affine32": _signature_kernel(_update_affine32),
    "affine64": _signature_kernel(_update_affine64),
    "legacy": _signature_kernel(_update_legacy),
}


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
                (generator.randint(1, MERSENNE_PRIME, dtype=np.uint64), generator.randint(0, MERSENNE_PRIME, dtype=np.uint64))
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
        data, offsets = text_buffers(texts)
        signatures = np.full((len(offsets) - 1, self.num_perm), self.empty_value, dtype=self.dtype)
        mult, add = self.permutations
        return _KERNELS[self.scheme](data, offsets, self.ngram, separator_table(), mult, add, signatures)
