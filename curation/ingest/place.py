"""Ingest's last phase: each read unit's documents become the dataset's shards.

A read unit writes into ``_work/read/`` because two facts are only known once every unit
has been read: which of its documents repeat an earlier id (``ingest.ids``), and which of
its metadata columns another file gave another type (unified by
``dataset.unify_types``, so the dataset reads as one table). A unit with neither is
linked into ``shards/`` and ``rejects/`` byte for byte; the rare unit with either is
rewritten, its repeated ids turned into ``duplicate_id`` rejects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from corpusmill.curation.atomic import link_or_copy, read_json
from corpusmill.curation.dataset import (
    DEFAULT_SHARD_BYTES,
    REJECTS_DIR,
    SHARDS_DIR,
    ShardInfo,
    ShardWriter,
    conform_column,
    describe_columns,
    reject_table,
    unify_types,
)
from corpusmill.curation.ingest.ids import DUPLICATE_SCHEMA, REASON
from corpusmill.curation.ingest.readers import STAGE
from corpusmill.curation.partition import read_partition
from corpusmill.curation.stage import PROGRESS_DIR, StageRun
from corpusmill.curation.stats import StageStats

READ_PHASE = "read"
IDS_PHASE = "ids"


def read_record(run: StageRun, unit_id: str) -> dict[str, Any]:
    return read_json(run.out / PROGRESS_DIR / READ_PHASE / f"{unit_id}.json")


def unified_types(run: StageRun, reads: list[dict[str, Any]]) -> tuple[dict[str, pa.DataType], dict[str, str]]:
    """The type each drifting column gets, and the manifest's note on it, from the read shards' footers."""
    seen: dict[str, list[pa.DataType]] = {}
    for record in reads:
        for shard in record["shards"]:
            for column in pq.read_schema(run.out / shard["name"]):
                seen.setdefault(column.name, []).append(column.type)
    targets, notes = {}, {}
    for name, types in seen.items():
        target, how = unify_types(types)
        if how is not None:
            targets[name] = target
            found = " | ".join(sorted({str(t) for t in types if not pa.types.is_null(t)}))
            notes[name] = f"{found} -> {target} ({how})"
    return targets, notes


@dataclass(frozen=True)
class PlaceUnit:
    """Publish one read unit: link its files, or rewrite them without repeated ids / with unified types."""

    targets: dict[str, pa.DataType]
    max_shard_bytes: int = DEFAULT_SHARD_BYTES

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        read = read_record(run, unit["unit_id"])
        shards = [ShardInfo(**s) for s in read["shards"]]
        rejects = [_link(run, ShardInfo(**s), REJECTS_DIR) for s in read["rejects"]]
        duplicates = read_duplicates(run, unit["index"])
        if duplicates.num_rows == 0 and not any(self._drifts(run.out / s.name) for s in shards):
            placed = [_link(run, shard, SHARDS_DIR) for shard in shards]
            return _record(unit["unit_id"], placed, rejects, read["columns"], read["stats"])
        return self._rewrite(run, unit["unit_id"], read, shards, rejects, duplicates)

    def _drifts(self, path: Path) -> bool:
        schema = pq.read_schema(path)
        return any(
            f.name in self.targets and f.type != self.targets[f.name] for f in schema if not pa.types.is_null(f.type)
        )

    def _rewrite(
        self,
        run: StageRun,
        unit_id: str,
        read: dict[str, Any],
        shards: list[ShardInfo],
        rejects: list[ShardInfo],
        duplicates: pa.Table,
    ) -> dict[str, Any]:
        stats = StageStats.from_dict(read["stats"])
        docs = ShardWriter(run.out, SHARDS_DIR, unit_id, self.max_shard_bytes)
        repeated = ShardWriter(run.out, REJECTS_DIR, f"{unit_id}-dup")
        duplicates = duplicates.sort_by("row")
        duplicate_rows = duplicates["row"].to_numpy()
        offset = 0
        for shard in shards:
            for batch in pq.ParquetFile(run.out / shard.name).iter_batches():
                table = self._conform(pa.Table.from_batches([batch]))
                rows = np.arange(offset, offset + table.num_rows, dtype=np.uint64)
                offset += table.num_rows
                gone = np.isin(rows, duplicate_rows)
                docs.write(table.filter(pa.array(~gone)))
                if gone.any():
                    lo, hi = np.searchsorted(duplicate_rows, [rows[0], rows[-1] + 1])
                    lost = _duplicate_rejects(table.filter(pa.array(gone)), duplicates.slice(lo, hi - lo))
                    repeated.write(lost, nbytes=0)
                    nbytes = int(sum(lost["raw_bytes"].to_pylist()))
                    stats.add_output(-lost.num_rows, -nbytes)
                    stats.add_rejected(REASON, lost.num_rows, nbytes)
        placed, extra = docs.close(), repeated.close()
        return _record(unit_id, placed, [*rejects, *extra], describe_columns(docs.schemas), stats.to_dict())

    def _conform(self, table: pa.Table) -> pa.Table:
        for index, column in enumerate(table.schema):
            target = self.targets.get(column.name)
            if target is not None and column.type != target:
                table = table.set_column(index, column.name, conform_column(table[column.name], target))
        return table


def _record(
    unit_id: str, shards: list[ShardInfo], rejects: list[ShardInfo], columns: dict[str, str], stats: dict[str, Any]
) -> dict[str, Any]:
    return {
        "unit_id": unit_id,
        "shards": [asdict(s) for s in shards],
        "rejects": [asdict(s) for s in rejects],
        "columns": columns,
        "stats": stats,
    }


def _link(run: StageRun, shard: ShardInfo, subdir: str) -> ShardInfo:
    """A read unit's file, published under ``subdir`` with the same name and bytes."""
    placed = replace(shard, name=f"{subdir}/{Path(shard.name).name}")
    link_or_copy(run.out / shard.name, run.out / placed.name)
    return placed


def read_duplicates(run: StageRun, unit_index: int) -> pa.Table:
    """The later duplicates that live in one read unit, routed to it by the ids phase."""
    found = read_partition(sorted(run.work_dir(IDS_PHASE).glob("*.arrow")), unit_index)
    return DUPLICATE_SCHEMA.empty_table() if found is None else found


def _duplicate_rejects(documents: pa.Table, duplicates: pa.Table) -> pa.Table:
    """``duplicate_id`` rejects for documents (in row order) and their keys (the same rows, in order)."""
    return reject_table(
        STAGE,
        [REASON] * documents.num_rows,
        [f"id already used by the document at {first}" for first in duplicates["first_where"].to_pylist()],
        duplicates["where"].to_pylist(),
        documents["source"].to_pylist(),
        documents["id"].to_pylist(),
        [text.encode() for text in documents["text"].to_pylist()],
    )
