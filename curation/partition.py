"""Hash-partitioned scratch files: the shuffle behind every global stage.

A map task writes ONE Arrow IPC file whose record batch ``p`` holds the rows of
partition ``p``; a reduce task for ``p`` memory-maps every map file and reads
batch ``p`` alone. Memory per reduce task is total rows / partitions, and the
file count is the number of map tasks, not map tasks x partitions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from corpusmill.curation.atomic import atomic_path
from corpusmill.curation.errors import ConfigError

ROWS_PER_PARTITION = 2_000_000


def check_partitions(requested: int | None) -> None:
    """A user's ``--partitions``: a positive count, or None for the default."""
    if requested is not None and requested < 1:
        raise ConfigError(
            f"--partitions must be a positive number of partitions, got {requested}; omit it for the default"
        )


def partitions_for(rows: int, rows_per_partition: int = ROWS_PER_PARTITION) -> int:
    """Enough partitions that each reduce task holds at most ``rows_per_partition`` rows."""
    return max(1, -(-rows // rows_per_partition))


def write_partitioned(path: Path, table: pa.Table, partition: np.ndarray, num_partitions: int) -> None:
    """Write ``table`` as ``num_partitions`` record batches, row i going to batch ``partition[i]``."""
    partition = np.asarray(partition, dtype=np.int64)
    order = np.argsort(partition, kind="stable")
    ordered = table.take(pa.array(order)).combine_chunks()
    bounds = np.searchsorted(partition[order], np.arange(num_partitions + 1))
    with atomic_path(path) as tmp, pa.OSFile(str(tmp), "wb") as sink:
        with pa.ipc.new_file(sink, ordered.schema) as writer:
            for p in range(num_partitions):
                writer.write_batch(_as_batch(ordered.slice(bounds[p], bounds[p + 1] - bounds[p])))


def _as_batch(table: pa.Table) -> pa.RecordBatch:
    columns = [column.combine_chunks() if column.num_chunks else pa.array([], column.type) for column in table.columns]
    return pa.RecordBatch.from_arrays(columns, schema=table.schema)


def read_partition(paths: list[Path], partition: int) -> pa.Table | None:
    """Rows of one partition gathered from every map file (None when there are no files)."""
    # The maps stay open as long as the returned buffers reference them.
    batches = [pa.ipc.open_file(pa.memory_map(str(path))).get_batch(partition) for path in paths]
    if not batches:
        return None
    return pa.Table.from_batches(batches).combine_chunks()


def read_all(path: Path) -> pa.Table:
    return pa.ipc.open_file(pa.memory_map(str(path))).read_all()


def hash_partition(keys: pa.Array | np.ndarray, num_partitions: int) -> np.ndarray:
    """Partition of each uint64 key; keys are hashes already, so the modulus is uniform."""
    values = keys.to_numpy(zero_copy_only=False) if isinstance(keys, (pa.Array, pa.ChunkedArray)) else keys
    return (np.asarray(values, dtype=np.uint64) % np.uint64(num_partitions)).astype(np.int64)


