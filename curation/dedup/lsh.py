"""LSH banding: band keys, and candidate pairs from band buckets (the band/row choice is in ``banding``).

Two documents become a candidate pair when all ``rows`` signature values of at
least one of ``bands`` bands agree. Band keys are 64-bit hashes of
(band index, band values), so a bucket is "rows with the same key" and a
shuffle can route buckets by key alone; a rare key collision only adds a
candidate, which verification then rejects.
"""

from __future__ import annotations

import numba
import numpy as np

from corpusmill.curation.dedup.banding import DEFAULT_BUCKET_WINDOW, check_bands
from corpusmill.curation.dedup.shingles import GOLDEN, fmix64


@numba.njit(cache=True)
def _band_keys(signatures, bands, rows, keys):
    for doc in range(signatures.shape[0]):
        for band in range(bands):
            value = fmix64(np.uint64(band + 1))
            for column in range(band * rows, (band + 1) * rows):
                value = (value ^ np.uint64(signatures[doc, column])) * GOLDEN
            keys[doc, band] = fmix64(value)
    return keys


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """uint64 key of each (document, band), shape (len(signatures), bands)."""
    check_bands(bands, rows, signatures.shape[1])
    keys = np.empty((signatures.shape[0], bands), dtype=np.uint64)
    return _band_keys(np.ascontiguousarray(signatures), bands, rows, keys)


def bucket_pairs(
    keys: np.ndarray, docs: np.ndarray, window: int = DEFAULT_BUCKET_WINDOW
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (left < right) from rows sharing a band key.

    Within a bucket ordered by document number, every document is paired with
    the next ``window`` ones: all pairs of buckets of up to ``window + 1``
    documents, and O(size * window) pairs, not O(size^2), for huge buckets
    (whose members still connect through the overlapping windows). The result
    depends only on the set of (key, doc) rows, never on their order.
    """
    if window < 1:
        raise ValueError(f"bucket window must be >= 1, got {window}")
    order = np.lexsort((docs, keys))
    sorted_keys, sorted_docs = keys[order], docs[order]
    lefts, rights = [], []
    for distance in range(1, window + 1):
        same = sorted_keys[distance:] == sorted_keys[:-distance]
        if not same.any():
            break
        lefts.append(sorted_docs[:-distance][same])
        rights.append(sorted_docs[distance:][same])
    if not lefts:
        return np.zeros(0, dtype=docs.dtype), np.zeros(0, dtype=docs.dtype)
    left, right = np.concatenate(lefts), np.concatenate(rights)
    distinct = left != right
    return left[distinct], right[distinct]


def unique_pairs(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (left, right) pairs, sorted; a pair found in several bands counts once."""
    if left.size == 0:
        return left, right
    order = np.lexsort((right, left))
    left, right = left[order], right[order]
    first = np.ones(left.size, dtype=bool)
    first[1:] = (left[1:] != left[:-1]) | (right[1:] != right[:-1])
    return left[first], right[first]
