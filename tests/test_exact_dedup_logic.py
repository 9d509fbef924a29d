"""The smallest-id-wins rule is a function of the rows alone, whatever their order or split."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from corpusmill.curation.dedup.exact import select_duplicates, text_hashes


def hashed_table(texts: list[str], ids: list[str]) -> pa.Table:
    hi, lo = text_hashes(pa.array(texts))
    return pa.table({"hi": hi, "lo": lo, "id": ids})


def test_hashes_are_xxh3_128_of_utf8() -> None:
    texts = ["", "naïve café", "日本語", "a" * 10_000]
    hi, lo = text_hashes(pa.chunked_array([pa.array(texts[:2]), pa.array(texts[2:]).slice(0)]))
    for text, h, l in zip(texts, hi, lo):
        assert (int(h) << 64) | int(l) == xxhash.xxh3_128_intdigest(text.encode())


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(st.sampled_from(["alpha", "beta", "gamma", "delta", "ε"]), min_size=1, max_size=40),
    seed=st.integers(0, 2**32 - 1),
    parts=st.integers(1, 5),
)
def test_removed_set_is_order_and_partition_independent(texts: list[str], seed: int, parts: int) -> None:
    ids = [f"doc-{i:03d}" for i in range(len(texts))]
    table = hashed_table(texts, ids)
    removed, groups = select_duplicates(table)
    expected = {i: min(j for j, t in zip(ids, texts) if t == text) for i, text in zip(ids, texts)}
    assert dict(zip(removed["id"].to_pylist(), removed["kept_id"].to_pylist())) == {
        i: k for i, k in expected.items() if i != k
    }
    assert groups == sum(1 for t in set(texts) if texts.count(t) > 1)
    order = np.random.default_rng(seed).permutation(len(texts))
    shuffled = table.take(pa.array(order))
    pieces = [shuffled.filter(pa.array((shuffled["hi"].to_numpy() % parts) == p)) for p in range(parts)]
    pairs = set()
    for piece in pieces:
        part, _ = select_duplicates(piece)
        pairs |= set(zip(part["id"].to_pylist(), part["kept_id"].to_pylist()))
    assert pairs == set(zip(removed["id"].to_pylist(), removed["kept_id"].to_pylist()))
