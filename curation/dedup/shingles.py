"""Word n-gram shingles and their 64-bit hashes, compiled over whole Arrow batches.

A shingle is ``ngram`` consecutive normalised words (:mod:`.text_norm`); a
document with fewer words has one shingle made of all of them, and a document
with no words has none. A shingle's hash is defined on its words:

    word_hash(w)   = FNV-1a 64 over the UTF-8 bytes of w
    shingle_hash64 = fmix64(sum_k word_hash(w_k) * GOLDEN^(m-k) mod 2^64)
                     for the shingle's words w_1 .. w_m

so the compiled scanner hashes each byte once and rolls the polynomial in
O(1) per word, whatever ``ngram`` is, and
:func:`shingle_hash64` (plain Python) states the same function for the
reference implementations (datasketch, exact Jaccard ground truth).
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from corpusmill.curation.dedup.text_norm import lowercase, normalized_words, separator_table

MASK64 = (1 << 64) - 1
MASK32 = (1 << 32) - 1
FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
FMIX64_C1 = np.uint64(0xFF51AFD7ED558CCD)
FMIX64_C2 = np.uint64(0xC4CEB9FE1A85EC53)
SHIFT33 = np.uint64(33)


# ---------------------------------------------------------------- reference


def _fnv1a64(data: bytes) -> int:
    value = int(FNV_OFFSET)
    for byte in data:
        value = ((value ^ byte) * int(FNV_PRIME)) & MASK64
    return value


def _fmix64_int(value: int) -> int:
    value ^= value >> 33
    value = (value * int(FMIX64_C1)) & MASK64
    value ^= value >> 33
    value = (value * int(FMIX64_C2)) & MASK64
    return value ^ (value >> 33)


def shingle_hash64(shingle: str) -> int:
    """64-bit hash of one shingle given as its words joined by single spaces."""
    value = 0
    for word in shingle.split(" "):
        value = (value * int(GOLDEN) + _fnv1a64(word.encode("utf-8"))) & MASK64
    return _fmix64_int(value)


def shingle_hash32(shingle: str) -> int:
    """Low 32 bits of :func:`shingle_hash64`: the MinHash input of 32-bit schemes."""
    return shingle_hash64(shingle) & MASK32


def shingle_strings(text: str, ngram: int) -> list[str]:
    """The shingles of one document as strings, in order, duplicates included."""
    words = normalized_words(text)
    if len(words) < ngram:
        return [" ".join(words)] if words else []
    return [" ".join(words[i : i + ngram]) for i in range(len(words) - ngram + 1)]


# ----------------------------------------------------------------- compiled


@numba.njit(cache=True, inline="always")
def fmix64(value):
    value ^= value >> SHIFT33
    value *= FMIX64_C1
    value ^= value >> SHIFT33
    value *= FMIX64_C2
    return value ^ (value >> SHIFT33)


@numba.njit(cache=True)
def fmix64_array(values):
    """fmix64 of every value of an integer array, as uint64."""
    mixed = np.empty(values.shape[0], dtype=np.uint64)
    for k in range(values.shape[0]):
        mixed[k] = fmix64(np.uint64(values[k]))
    return mixed


@numba.njit(cache=True, inline="always")
def _code_point(data, pos, end):
    """(code point, byte width) of the UTF-8 character at ``pos``."""
    lead = np.int64(data[pos])
    if lead < 0x80:
        return lead, 1
    if lead < 0xE0:
        width, code_point = 2, lead & 0x1F
    elif lead < 0xF0:
        width, code_point = 3, lead & 0x0F
    else:
        width, code_point = 4, lead & 0x07
    width = min(width, end - pos)
    for k in range(1, width):
        code_point = (code_point << 6) | (np.int64(data[pos + k]) & 0x3F)
    return min(code_point, 0x10FFFF), width


@numba.njit(cache=True, inline="always")
def _end_word(word_hash, rolling, ring, slot, words, leaving_weight, out, count):
    """Roll a finished word into the shingle polynomial: return (rolling, slot, words, count)."""
    ngram = ring.shape[0]
    if words >= ngram:
        rolling -= ring[slot] * leaving_weight
    rolling = rolling * GOLDEN + word_hash
    ring[slot] = word_hash
    slot = slot + 1 if slot + 1 < ngram else 0
    words += 1
    if words >= ngram:
        out[count] = fmix64(rolling)
        count += 1
    return rolling, slot, words, count


@numba.njit(cache=True, inline="always")
def doc_shingle_hashes(data, start, end, is_separator, ring, leaving_weight, out):
    """Write the shingle hashes of bytes ``data[start:end]`` to ``out``; return the count.

    The polynomial is rolled: each word adds itself and removes the word
    ``ngram`` places back (kept in ``ring``; ``leaving_weight`` is
    GOLDEN^(ngram-1)), so a word costs O(1) whatever ``ngram`` is.
    """
    count = words = slot = 0
    rolling = np.uint64(0)
    in_word = False
    word_hash = FNV_OFFSET
    pos = start
    while pos < end:
        lead = data[pos]
        if lead < 0x80:  # ASCII fast path
            width, separator = 1, is_separator[lead]
        else:
            code_point, width = _code_point(data, pos, end)
            separator = is_separator[code_point]
        if not separator:
            if not in_word:
                word_hash = FNV_OFFSET
                in_word = True
            for k in range(width):
                word_hash = (word_hash ^ np.uint64(data[pos + k])) * FNV_PRIME
        elif in_word:
            in_word = False
            rolling, slot, words, count = _end_word(word_hash, rolling, ring, slot, words, leaving_weight, out, count)
        pos += width
    if in_word:
        rolling, slot, words, count = _end_word(word_hash, rolling, ring, slot, words, leaving_weight, out, count)
    if 0 < words < ring.shape[0]:
        out[0] = fmix64(rolling)
        count = 1
    return count


@numba.njit(cache=True)
def _all_shingle_hashes(data, offsets, ngram, is_separator):
    num_docs = offsets.shape[0] - 1
    # Typical text has a word per ~6 bytes; grow when a document could overflow, since a
    # word takes at least two bytes with its separator (the per-document bound).
    values = np.empty((offsets[num_docs] - offsets[0]) // 6 + 1, dtype=np.uint64)
    value_offsets = np.zeros(num_docs + 1, dtype=np.int64)
    ring = np.empty(ngram, dtype=np.uint64)
    leaving_weight = np.uint64(1)
    for _ in range(ngram - 1):
        leaving_weight *= GOLDEN
    written = 0
    for doc in range(num_docs):
        needed = written + (offsets[doc + 1] - offsets[doc]) // 2 + 1
        if needed > values.shape[0]:
            grown = np.empty(max(needed, 2 * values.shape[0]), dtype=np.uint64)
            grown[:written] = values[:written]
            values = grown
        written += doc_shingle_hashes(
            data, offsets[doc], offsets[doc + 1], is_separator, ring, leaving_weight, values[written:]
        )
        value_offsets[doc + 1] = written
    return values[:written].copy(), value_offsets


@numba.njit(cache=True)
def _sorted_unique_per_doc(values, offsets):
    """Sort each document's slice and drop repeats, compacting in place."""
    unique_offsets = np.zeros_like(offsets)
    written = 0
    for doc in range(offsets.shape[0] - 1):
        view = values[offsets[doc] : offsets[doc + 1]]
        view.sort()
        for k in range(view.shape[0]):
            if k == 0 or view[k] != view[k - 1]:
                values[written] = view[k]
                written += 1
        unique_offsets[doc + 1] = written
    return values[:written], unique_offsets


def text_buffers(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Lowercased UTF-8 bytes and int64 offsets of a string column (nulls read as empty)."""
    lowered = lowercase(texts)
    _, offsets_buffer, data_buffer = lowered.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[lowered.offset : lowered.offset + len(lowered) + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    return data, offsets


def shingle_hashes(texts: pa.Array | pa.ChunkedArray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """Every document's shingle hashes in text order: flat uint64 values and int64 offsets."""
    data, offsets = text_buffers(texts)
    return _all_shingle_hashes(data, offsets, ngram, separator_table())


def sets_of_hashes(hashes: np.ndarray, offsets: np.ndarray) -> pa.LargeListArray:
    """Each document's distinct shingle hashes, sorted ascending, as list<uint64>."""
    values, set_offsets = _sorted_unique_per_doc(hashes.copy(), offsets)
    return pa.LargeListArray.from_arrays(pa.array(set_offsets), pa.array(values, type=pa.uint64()))


def shingle_sets(texts: pa.Array | pa.ChunkedArray, ngram: int) -> pa.LargeListArray:
    """Each document's set of shingle hashes, sorted ascending, as list<uint64>."""
    return sets_of_hashes(*shingle_hashes(texts, ngram))
