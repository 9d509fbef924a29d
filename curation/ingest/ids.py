"""Unique ids across the whole ingest: the first document with an id keeps it, later ones are rejects.

"First" is input order: the order of the planned units, then the order of documents within a
unit. The key is (unit, row), which orders documents the same way however the inputs are
split into units, so the survivor never depends on chunking or on the partition count.

Each read unit writes its documents' keys (id, unit, row, where) hash-partitioned by id; one
task per partition sorts its keys and names the later duplicates; those are routed back,
partitioned by unit, to the unit that holds them (``ingest.place``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from corpusmill.curation.partition import write_partitioned

KEY_SCHEMA = pa.schema([("id", pa.string()), ("unit", pa.uint32()), ("row", pa.uint64()), ("where", pa.string())])
DUPLICATE_SCHEMA = pa.schema([*KEY_SCHEMA, ("first_where", pa.string())])
REASON = "duplicate_id"
# Raw input bytes per id partition: about a million documents' ids per task, a few tens of MB.
BYTES_PER_PARTITION = 2**30


def partitions_for(input_bytes: int) -> int:
    return max(1, -(-input_bytes // BYTES_PER_PARTITION))


def id_partition(ids: pa.Array | pa.ChunkedArray, num_partitions: int) -> np.ndarray:
    """Partition of each id: a hash of its UTF-8 bytes, the same on every machine."""
    if num_partitions == 1:
        return np.zeros(len(ids), dtype=np.int64)
    hashes = np.fromiter((xxhash.xxh3_64_intdigest(value) for value in ids.to_pylist()), np.uint64, len(ids))
    return (hashes % np.uint64(num_partitions)).astype(np.int64)


def write_keys(path: Path, keys: list[pa.Table], unit_index: int, num_partitions: int) -> None:
    """One unit's document keys (tables of ``id`` and ``where``, in document order), partitioned by id."""
    table = pa.concat_tables(keys) if keys else KEY_SCHEMA.empty_table().select(["id", "where"])
    rows = table.num_rows
    keyed = pa.table(
        {
            "id": table["id"],
            "unit": pa.array(np.full(rows, unit_index, dtype=np.uint32)),
            "row": pa.array(np.arange(rows, dtype=np.uint64)),
            "where": table["where"],
        },
        schema=KEY_SCHEMA,
    )
    write_partitioned(path, keyed, id_partition(keyed["id"], num_partitions), num_partitions)


def later_duplicates(keys: pa.Table | None) -> pa.Table:
    """Every key whose id an earlier (unit, row) already has, with where that first one is."""
    if keys is None or keys.num_rows < 2:
        return DUPLICATE_SCHEMA.empty_table()
    order = pc.sort_indices(keys, sort_keys=[("id", "ascending"), ("unit", "ascending"), ("row", "ascending")])
    ordered = keys.take(order)
    ids = ordered["id"]
    repeats = np.concatenate(
        [[False], pc.equal(ids.slice(1), ids.slice(0, len(ids) - 1)).to_numpy(zero_copy_only=False)]
    )
    positions = np.arange(len(repeats))
    first = np.maximum.accumulate(np.where(repeats, 0, positions))
    later = ordered.filter(pa.array(repeats))
    first_where = ordered["where"].take(pa.array(first[repeats]))
    return later.append_column("first_where", first_where).cast(DUPLICATE_SCHEMA)
