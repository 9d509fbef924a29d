"""Exact ground truth: every document pair whose shingle-set Jaccard is >= a threshold.

No O(n^2) scan: the all-pairs prefix filter (Bayardo et al., WWW 2007). Order
shingles globally rarest first; two sets with Jaccard >= t must share one of
the first |x| - ceil(t |x|) + 1 shingles of each, so an inverted index over
those prefixes yields every qualifying pair, and each candidate is then
verified by exact set intersection.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pyarrow as pa

from corpusmill.curation.dedup.lsh import unique_pairs
from corpusmill.curation.dedup.verify import exact_jaccard


@numba.njit(cache=True)
def _prefix_postings(ranks, offsets, threshold):
    """(token rank, doc) for each doc's prefix of its rarest tokens."""
    total = 0
    for doc in range(offsets.shape[0] - 1):
        size = offsets[doc + 1] - offsets[doc]
        if size:
            total += size - math.ceil(threshold * size - 1e-9) + 1
    tokens = np.empty(total, dtype=np.int64)
    docs = np.empty(total, dtype=np.int64)
    written = 0
    for doc in range(offsets.shape[0] - 1):
        size = offsets[doc + 1] - offsets[doc]
        if size == 0:
            continue
        prefix = size - math.ceil(threshold * size - 1e-9) + 1
        rarest = np.sort(ranks[offsets[doc] : offsets[doc + 1]])[:prefix]
        tokens[written : written + prefix] = rarest
        docs[written : written + prefix] = doc
        written += prefix
    return tokens, docs


@numba.njit(cache=True)
def _pairs_in_groups(docs, starts, ends, sizes, threshold):
    """All pairs within each posting list that pass the size filter |small| >= t |large|."""
    count = 0
    for group in range(starts.shape[0]):
        length = ends[group] - starts[group]
        count += length * (length - 1) // 2
    left = np.empty(count, dtype=np.int64)
    right = np.empty(count, dtype=np.int64)
    written = 0
    for group in range(starts.shape[0]):
        for i in range(starts[group], ends[group]):
            for j in range(i + 1, ends[group]):
                a, b = min(docs[i], docs[j]), max(docs[i], docs[j])
                small, large = min(sizes[a], sizes[b]), max(sizes[a], sizes[b])
                if small >= threshold * large - 1e-9:
                    left[written], right[written] = a, b
                    written += 1
    return left[:written], right[:written]


def similar_pairs(sets: pa.LargeListArray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left, right, jaccard) of every pair of ``sets`` rows with Jaccard >= threshold."""
    offsets = sets.offsets.to_numpy()
    values = sets.values.to_numpy()
    distinct, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    rank_of_distinct = np.empty(distinct.size, dtype=np.int64)
    rank_of_distinct[np.lexsort((distinct, counts))] = np.arange(distinct.size)
    tokens, docs = _prefix_postings(rank_of_distinct[inverse], offsets, threshold)
    order = np.lexsort((docs, tokens))
    tokens, docs = tokens[order], docs[order]
    starts = np.flatnonzero(np.r_[True, tokens[1:] != tokens[:-1]])
    ends = np.r_[starts[1:], tokens.size]
    shared = ends - starts > 1
    left, right = _pairs_in_groups(docs, starts[shared], ends[shared], np.diff(offsets), threshold)
    left, right = unique_pairs(left, right)
    jaccard = exact_jaccard(sets, left, right)
    similar = jaccard >= threshold
    return left[similar], right[similar], jaccard[similar]
