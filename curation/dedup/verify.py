"""Verification of candidate pairs: drop LSH false positives before clustering.

``exact``: Jaccard similarity of the two documents' shingle-hash sets (64-bit
hashes, so a collision between distinct shingles has probability ~2^-64 per
pair of shingles). ``estimate``: fraction of equal signature values, the MinHash
estimate, cheaper but with a standard error of sqrt(J(1-J)/num_perm), so it
loses some true pairs just above the threshold.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa


@numba.njit(cache=True)
def _jaccard_of_sorted_sets(values, offsets, left, right, out):
    for pair in range(left.shape[0]):
        a, a_end = offsets[left[pair]], offsets[left[pair] + 1]
        b, b_end = offsets[right[pair]], offsets[right[pair] + 1]
        size_a, size_b = a_end - a, b_end - b
        common = 0
        while a < a_end and b < b_end:
            if values[a] == values[b]:
                common += 1
                a += 1
                b += 1
            elif values[a] < values[b]:
                a += 1
            else:
                b += 1
        union = size_a + size_b - common
        out[pair] = common / union if union else 0.0
    return out


def exact_jaccard(sets: pa.LargeListArray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Jaccard of ``sets[left[i]]`` and ``sets[right[i]]``; each set sorted and distinct."""
    sets = sets.combine_chunks() if isinstance(sets, pa.ChunkedArray) else sets
    sets = sets.cast(pa.large_list(pa.uint64()))
    offsets = sets.offsets.to_numpy()
    values = sets.values.to_numpy(zero_copy_only=False)
    out = np.empty(left.shape[0], dtype=np.float64)
    return _jaccard_of_sorted_sets(values, offsets, left.astype(np.int64), right.astype(np.int64), out)


def estimated_jaccard(signatures: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Fraction of equal MinHash values of each pair of signature rows."""
    if left.size == 0:
        return np.zeros(0, dtype=np.float64)
    return (signatures[left] == signatures[right]).mean(axis=1)
