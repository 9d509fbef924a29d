"""Banding parameters, band keys and candidate pairs from buckets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from datasketch import MinHashLSH

from corpusmill.curation.dedup.banding import RECALL_WEIGHTS, check_bands, optimal_bands
from corpusmill.curation.dedup.lsh import band_keys, bucket_pairs, unique_pairs


@pytest.mark.parametrize("threshold", [0.7, 0.8, 0.9])
def test_default_banding_is_datasketchs(threshold: float) -> None:
    reference = MinHashLSH(threshold=threshold, num_perm=128)
    assert optimal_bands(threshold, 128) == (reference.b, reference.r)


def test_recall_weighted_banding_catches_more_pairs_at_the_threshold() -> None:
    def candidate_probability(bands: int, rows: int, jaccard: float) -> float:
        return 1 - (1 - jaccard**rows) ** bands

    balanced = optimal_bands(0.8, 128)
    recall_weighted = optimal_bands(0.8, 128, RECALL_WEIGHTS)
    assert candidate_probability(*recall_weighted, 0.8) > candidate_probability(*balanced, 0.8) + 0.3


def test_band_keys_change_only_in_the_band_that_changed() -> None:
    rng = np.random.default_rng(0)
    signatures = rng.integers(0, 2**32, size=(2, 12), dtype=np.uint64).astype(np.uint32)
    signatures[1] = signatures[0]
    signatures[1, 5] += 1  # column 5 is in band 1 of 3 bands x 4 rows
    keys = band_keys(signatures, 3, 4)
    assert keys.shape == (2, 3) and keys.dtype == np.uint64
    assert list(keys[0] == keys[1]) == [True, False, True]
    assert len(set(keys[0].tolist())) == 3  # equal values in different bands never share a bucket
    with pytest.raises(ValueError, match="bands \\* rows"):
        band_keys(signatures, 4, 4)


def test_small_buckets_give_every_pair_large_ones_a_window() -> None:
    keys = np.array([7] * 5 + [9] * 200 + [11], dtype=np.uint64)
    docs = np.arange(206, dtype=np.int64)[::-1].copy()
    left, right = bucket_pairs(keys, docs, window=8)
    pairs = set(zip(left.tolist(), right.tolist()))
    small = set(itertools.combinations(sorted(docs[:5].tolist()), 2))
    assert small <= pairs
    big = sorted(docs[5:205].tolist())
    expected_big = {(a, b) for i, a in enumerate(big) for b in big[i + 1 : i + 9]}
    assert pairs - small == expected_big
    assert all(a < b for a, b in pairs)


def test_bucket_pairs_do_not_depend_on_row_order() -> None:
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 30, 2000).astype(np.uint64)
    docs = rng.permutation(2000).astype(np.int64)
    order = rng.permutation(2000)
    first = unique_pairs(*bucket_pairs(keys, docs, window=4))
    second = unique_pairs(*bucket_pairs(keys[order], docs[order], window=4))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_unique_pairs_removes_pairs_found_in_several_bands() -> None:
    left, right = unique_pairs(np.array([3, 1, 3, 1]), np.array([4, 2, 4, 5]))
    assert list(zip(left.tolist(), right.tolist())) == [(1, 2), (1, 5), (3, 4)]


def test_check_bands_refuses_impossible_settings() -> None:
    with pytest.raises(ValueError):
        check_bands(0, 4, 128)
    with pytest.raises(ValueError):
        check_bands(20, 8, 128)
