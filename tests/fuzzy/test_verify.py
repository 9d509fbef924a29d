"""Pair verification: exact Jaccard of shingle sets, and the signature estimate."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from corpusmill.curation.dedup.minhash import MinHasher
from corpusmill.curation.dedup.shingles import shingle_sets, shingle_strings
from corpusmill.curation.dedup.verify import estimated_jaccard, exact_jaccard


def test_exact_jaccard_equals_python_sets(near_duplicate_documents: list[tuple[str, str]]) -> None:
    texts = [text for _, text in near_duplicate_documents[:30]]
    sets = shingle_sets(pa.array(texts), 5)
    left, right = np.triu_indices(len(texts), k=1)
    ours = exact_jaccard(sets, left, right)
    words = [set(shingle_strings(text, 5)) for text in texts]
    expected = [len(words[a] & words[b]) / len(words[a] | words[b]) for a, b in zip(left, right)]
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)
    assert ((ours > 0.5) & (ours < 1.0)).any()  # the sample holds real near-duplicates


def test_estimate_is_within_its_sampling_error(near_duplicate_documents: list[tuple[str, str]]) -> None:
    texts = [text for _, text in near_duplicate_documents[:30]]
    left, right = np.triu_indices(len(texts), k=1)
    exact = exact_jaccard(shingle_sets(pa.array(texts), 5), left, right)
    estimate = estimated_jaccard(MinHasher(num_perm=256).signatures(pa.array(texts)), left, right)
    standard_error = np.sqrt(exact * (1 - exact) / 256)
    assert (np.abs(estimate - exact) <= 5 * standard_error + 1e-9).all()
    assert np.abs(estimate - exact).max() > 0  # an estimate, not a copy of the exact value
