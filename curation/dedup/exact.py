"""Exact duplicate logic: 128-bit text hashes and the smallest-id-wins rule.

Pure functions over Arrow tables; the distributed stage is in ``exact_stage``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash


def utf8_views(texts: pa.Array | pa.ChunkedArray) -> list[memoryview]:
    """Each string's UTF-8 bytes as a zero-copy view of the Arrow buffer."""
    views: list[memoryview] = []
    chunks = texts.chunks if isinstance(texts, pa.ChunkedArray) else [texts]
    for chunk in chunks:
        chunk = chunk.cast(pa.large_string()) if chunk.type != pa.large_string() else chunk
        _, offsets_buffer, data_buffer = chunk.buffers()
        offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[chunk.offset : chunk.offset + len(chunk) + 1]
        data = memoryview(data_buffer) if data_buffer is not None else memoryview(b"")
        views.extend(data[start:end] for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist()))
    return views


def text_hashes(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """XXH3-128 of each text, split into (high, low) uint64 halves for Arrow/NumPy keys."""
    digests = b"".join(xxhash.xxh3_128_digest(view) for view in utf8_views(texts))
    halves = np.frombuffer(digests, dtype=">u8").reshape(-1, 2).astype(np.uint64)
    return halves[:, 0].copy(), halves[:, 1].copy()


def select_duplicates(hashed: pa.Table) -> tuple[pa.Table, int]:
    """Rows to remove and the number of duplicate groups.

    ``hashed`` has columns ``hi``, ``lo`` (text hash), ``id`` and any row-locating
    columns; the result keeps those columns plus ``kept_id``, the smallest id of
    the row's group. The rule depends only on the rows, never on their order or
    partitioning.
    """
    if hashed.num_rows == 0:
        return hashed.append_column("kept_id", pa.array([], pa.string())), 0
    order = pc.sort_indices(hashed, [("hi", "ascending"), ("lo", "ascending"), ("id", "ascending")])
    ordered = hashed.take(order)
    hi = ordered["hi"].to_numpy()
    lo = ordered["lo"].to_numpy()
    starts_group = np.ones(len(hi), dtype=bool)
    starts_group[1:] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])
    group_start = np.maximum.accumulate(np.where(starts_group, np.arange(len(hi)), 0))
    kept_id = ordered["id"].take(pa.array(group_start))
    removed_mask = pa.array(~starts_group)
    removed = ordered.append_column("kept_id", kept_id).filter(removed_mask)
    groups_with_duplicates = int(np.count_nonzero(starts_group[:-1] & ~starts_group[1:]))
    return removed, groups_with_duplicates
