"""Text normalisation for near-duplicate detection.

Two documents that differ only in case, punctuation, symbols or spacing must
produce the same shingles, so before shingling the text is

1. lowercased with Arrow's ``utf8_lower`` (full Unicode case mapping), then
2. split into *words*: maximal runs of characters that are not separators,
   where a separator is any punctuation (Unicode category ``P*``), symbol
   (``S*``), space separator (``Z*``), control character (``Cc``) or
   whitespace.

Equivalently: every run of separators is folded into one space and the ends
are stripped. Digits and letters of every script are kept as they are.

The compiled shingler (:mod:`curation.dedup.shingles`) applies this rule while
it scans UTF-8 bytes; :func:`normalized_words` is the plain-Python statement of
the same rule, used as its reference.
"""

from __future__ import annotations

import functools
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

UNICODE_CODE_POINTS = 0x110000


def _is_separator(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] in "PSZ" or category == "Cc" or char.isspace()


@functools.cache
def separator_table() -> np.ndarray:
    """Boolean lookup by code point: True where the character separates words."""
    return np.fromiter(
        (_is_separator(chr(code_point)) for code_point in range(UNICODE_CODE_POINTS)),
        dtype=np.bool_,
        count=UNICODE_CODE_POINTS,
    )


def lowercase(texts: pa.Array | pa.ChunkedArray) -> pa.LargeStringArray:
    """Lowercase a string column into one contiguous large_string array."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    return pc.utf8_lower(texts.cast(pa.large_string()))


@functools.cache
def separator_pattern() -> str:
    """An RE2 character class matching runs of separators, built from :func:`separator_table`."""
    edges = np.flatnonzero(np.diff(np.r_[False, separator_table(), False].astype(np.int8)))
    ranges = zip(edges[::2].tolist(), (edges[1::2] - 1).tolist())
    return "[" + "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges) + "]+"


def normalize(texts: pa.Array | pa.ChunkedArray) -> pa.LargeStringArray:
    """Normalised texts, words joined by single spaces (the reference for the compiled scanner)."""
    folded = pc.replace_substring_regex(lowercase(texts), pattern=separator_pattern(), replacement=" ")
    return pc.utf8_trim(folded, characters=" ")


def normalized_words(text: str) -> list[str]:
    """The words of one document after normalisation."""
    normalized = normalize(pa.array([text], type=pa.large_string()))[0].as_py()
    return normalized.split(" ") if normalized else []
