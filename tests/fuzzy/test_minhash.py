"""Signatures equal datasketch's MinHash exactly; shingles follow the documented normalisation."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from datasketch import MinHash

from corpusmill.curation.dedup.minhash import MinHasher
from corpusmill.curation.dedup.shingles import shingle_hash32, shingle_hash64, shingle_hashes, shingle_sets, shingle_strings
from corpusmill.curation.dedup.text_norm import normalized_words

EDGE_CASES = [
    "",
    "!!! ... ???",
    "one",
    "Two words",
    "ÀÉÎ naïve café — “quoted” İstanbul ΣΑΣ 日本語のテキスト\u00a0nbsp\u2028line\x00nul",
]


@pytest.fixture(scope="module")
def texts(near_duplicate_documents: list[tuple[str, str]]) -> list[str]:
    return [text for _, text in near_duplicate_documents[:24]] + EDGE_CASES


def datasketch_signature(text: str, num_perm: int, seed: int, ngram: int, scheme: str) -> np.ndarray:
    hashfunc = shingle_hash64 if scheme == "affine64" else shingle_hash32
    minhash = MinHash(num_perm=num_perm, seed=seed, hashfunc=hashfunc, scheme=scheme)
    minhash.update_batch(shingle_strings(text, ngram))
    return minhash.hashvalues


@pytest.mark.parametrize("ngram", [5, 1])
def test_affine32_signatures_equal_datasketch_on_real_text(texts: list[str], ngram: int) -> None:
    ours = MinHasher(num_perm=128, seed=42, ngram=ngram).signatures(pa.array(texts))
    assert ours.dtype == np.uint32 and ours.shape == (len(texts), 128)
    for row, text in zip(ours, texts):
        np.testing.assert_array_equal(row, datasketch_signature(text, 128, 42, ngram, "affine32"))


@pytest.mark.parametrize("scheme", ["affine64", "legacy"])
def test_other_schemes_equal_datasketch(texts: list[str], scheme: str) -> None:
    sample = texts[:6] + EDGE_CASES
    ours = MinHasher(num_perm=32, seed=7, ngram=3, scheme=scheme).signatures(pa.array(sample))
    for row, text in zip(ours, sample):
        np.testing.assert_array_equal(row, datasketch_signature(text, 32, 7, 3, scheme))


def test_chunked_and_sliced_input_give_the_same_signatures(texts: list[str]) -> None:
    hasher = MinHasher(num_perm=64)
    whole = hasher.signatures(pa.array(texts))
    chunked = pa.chunked_array([pa.array(texts[:5]), pa.array(texts[5:])])
    np.testing.assert_array_equal(hasher.signatures(chunked), whole)
    np.testing.assert_array_equal(hasher.signatures(pa.array(texts).slice(3, 4)), whole[3:7])


def test_shingle_sets_equal_the_reference(texts: list[str]) -> None:
    sets = shingle_sets(pa.array(texts), 5)
    for text, got in zip(texts, sets.to_pylist()):
        assert got == sorted({shingle_hash64(s) for s in shingle_strings(text, 5)})


def test_normalisation_folds_case_punctuation_and_spacing(texts: list[str]) -> None:
    original = texts[0]
    variant = "  " + original.upper().replace(" ", " ,  \t").replace("\n", " --\n") + " !!"
    assert normalized_words(variant) == normalized_words(original)
    changed = original.replace("the", "THE", 1) + " extra words at the end"
    sets = shingle_sets(pa.array([original, variant, changed]), 5).to_pylist()
    assert sets[0] == sets[1] != sets[2]
    signatures = MinHasher().signatures(pa.array([original, variant]))
    np.testing.assert_array_equal(signatures[0], signatures[1])


def test_short_and_empty_documents() -> None:
    assert shingle_strings("Hello, world", 5) == ["hello world"]
    assert shingle_strings("...", 5) == []
    signatures = MinHasher(num_perm=16).signatures(pa.array(["", "...", None], type=pa.string()))
    assert (signatures == np.iinfo(np.uint32).max).all()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="scheme"):
        MinHasher(scheme="sha1")
    with pytest.raises(ValueError, match="positive"):
        MinHasher(ngram=0)


def test_text_denser_than_the_first_guess_grows_the_buffer() -> None:
    dense = "a b " * 5000  # a word every 2 bytes, three times the buffer's first guess
    hashes, offsets = shingle_hashes(pa.array([dense, "tail words of a second document"]), 5)
    assert hashes[offsets[0] : offsets[1]].tolist() == [shingle_hash64(s) for s in shingle_strings(dense, 5)]
    assert offsets[2] - offsets[1] == 2
