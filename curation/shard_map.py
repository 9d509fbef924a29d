"""The common stage shape: one pure function applied to every Arrow batch of every shard.

Stages hand ``map_dataset`` a factory for their batch function (so models load
once per worker process, not once per batch); this module owns reading shards,
rejecting rows that break the document contract, writing outputs and counting.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpusmill.curation.dataset import (
    DEFAULT_SHARD_BYTES,
    is_blank,
    REJECTS_DIR,
    REQUIRED_COLUMNS,
    SHARDS_DIR,
    Dataset,
    DatasetError,
    Manifest,
    ShardInfo,
    ShardWriter,
    describe_columns,
    reject_table,
    text_bytes,
)
from corpusmill.curation.stage import Executor, StageRun
from corpusmill.curation.stats import StageStats

BatchFn = Callable[[pa.Table], "BatchOutcome"]
BatchFnFactory = Callable[[], BatchFn]


@dataclass
class BatchOutcome:
    """Where each row of a batch went: kept (possibly annotated), removed by reason, or rejected."""

    kept: pa.Table
    removed: dict[str, pa.Table] = field(default_factory=dict)
    rejected: pa.Table | None = None


class UnitOutputs:
    """One unit's document shards, reject shards and accounting."""

    def __init__(self, run: StageRun, unit_id: str, max_shard_bytes: int = DEFAULT_SHARD_BYTES):
        self.stage = run.stage
        self.unit_id = unit_id
        self.stats = StageStats(run.stage)
        self.docs = ShardWriter(run.out, SHARDS_DIR, unit_id, max_shard_bytes)
        self.rejects = ShardWriter(run.out, REJECTS_DIR, unit_id)

    def keep(self, table: pa.Table) -> None:
        nbytes = text_bytes(table)
        self.docs.write(table, nbytes)
        self.stats.add_output(table.num_rows, nbytes)

    def remove(self, reason: str, table: pa.Table) -> None:
        self.stats.add_removed(reason, table.num_rows, text_bytes(table))

    def reject(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self.rejects.write(table, nbytes=0)
        for reason, nbytes in zip(table["reason"].to_pylist(), table["raw_bytes"].to_pylist()):
            self.stats.add_rejected(reason, 1, nbytes)

    def add(self, outcome: BatchOutcome) -> None:
        self.keep(outcome.kept)
        for reason, table in outcome.removed.items():
            self.remove(reason, table)
        if outcome.rejected is not None:
            self.reject(outcome.rejected)

    def record(self) -> dict[str, Any]:
        shards = self.docs.close()
        rejects = self.rejects.close()
        return {
            "unit_id": self.unit_id,
            "shards": [asdict(s) for s in shards],
            "rejects": [asdict(s) for s in rejects],
            "columns": describe_columns(self.docs.schemas),
            "stats": self.stats.to_dict(),
        }


_INVALID_REASONS = (
    ("missing_id", lambda t: pc.is_null(t["id"])),
    ("missing_text", lambda t: pc.is_null(t["text"])),
    ("missing_source", lambda t: pc.is_null(t["source"])),
    ("empty_text", lambda t: is_blank(t["text"])),
)


def conform_documents(table: pa.Table, location: str) -> pa.Table:
    """Check the required columns exist and are plain strings (casting e.g. large_string)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table.schema.names]
    if missing:
        raise DatasetError(f"{location}: missing required column(s) {missing}; run `corpusmill ingest` on it first")
    for name in REQUIRED_COLUMNS:
        if table.schema.field(name).type != pa.string():
            index = table.schema.get_field_index(name)
            table = table.set_column(index, name, pc.cast(table[name], pa.string()))
    return table


def check_document_columns(dataset: Dataset) -> None:
    """Fail on the driver, before any work, when a shard lacks a required column."""
    for shard in dataset.shards:
        names = pq.ParquetFile(dataset.shard_path(shard)).schema_arrow.names
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise DatasetError(
                f"{dataset.shard_path(shard)}: missing required column(s) {missing}; run `corpusmill ingest` on it first"
            )


def invalid_reasons(table: pa.Table) -> pa.Array:
    """Per row, why it breaks the document contract, or null when it is a valid document."""
    reasons = pa.nulls(table.num_rows, pa.string())
    for reason, predicate in reversed(_INVALID_REASONS):
        reasons = pc.if_else(pc.fill_null(predicate(table), False), reason, reasons)
    return reasons


def valid_mask(table: pa.Table, location: str) -> np.ndarray:
    """True where a row is a valid document: the rows a stage may process rather than reject."""
    return pc.is_null(invalid_reasons(conform_documents(table, location))).to_numpy(zero_copy_only=False)


def split_invalid_documents(
    table: pa.Table, stage: str, location: str, row_numbers: np.ndarray
) -> tuple[pa.Table, pa.Table]:
    """Separate rows that break the document contract (null id/text/source, blank text).

    ``row_numbers`` are the rows' positions in their shard, for the reject's location.
    """
    table = conform_documents(table, location)
    reasons = invalid_reasons(table)
    invalid = pc.is_valid(reasons)
    if not pc.any(invalid).as_py():
        return table, reject_table(stage, [], [], [], [], [], [])
    bad = table.filter(invalid)
    rows = pc.indices_nonzero(invalid).to_pylist()
    rejected = reject_table(
        stage,
        reasons.filter(invalid).to_pylist(),
        ["row breaks the document contract"] * bad.num_rows,
        [f"{location}:{row_numbers[r]}" for r in rows],
        bad["source"].to_pylist(),
        bad["id"].to_pylist(),
        [(text or "").encode() for text in bad["text"].to_pylist()],
    )
    return table.filter(pc.invert(invalid)), rejected


def process_shard(dataset: Dataset, shard: ShardInfo, outputs: UnitOutputs, batch_fn: BatchFn) -> None:
    """Stream one input shard through ``batch_fn`` into ``outputs``."""
    offset = 0
    for batch in dataset.iter_batches(shard):
        outputs.stats.add_input(batch.num_rows, text_bytes(batch))
        rows = np.arange(offset, offset + batch.num_rows)
        valid, rejected = split_invalid_documents(batch, outputs.stage, shard.name, rows)
        outputs.reject(rejected)
        outputs.add(batch_fn(valid))
        offset += batch.num_rows


_FACTORY_RESULTS: dict[Hashable, BatchFn] = {}


def _batch_fn_for(factory: BatchFnFactory) -> BatchFn:
    """Build a batch function once per worker process (Ray reuses workers across units)."""
    if not isinstance(factory, Hashable):
        return factory()
    if factory not in _FACTORY_RESULTS:
        _FACTORY_RESULTS[factory] = factory()
    return _FACTORY_RESULTS[factory]


def dataset_fingerprint(dataset: Dataset) -> str:
    """Identifies an input's content, so a resumed run refuses a changed input."""
    listing = json.dumps([asdict(s) for s in dataset.shards], sort_keys=True).encode()
    return hashlib.sha256(listing).hexdigest()[:16]


@dataclass(frozen=True)
class _MapShard:
    dataset: Dataset
    factory: BatchFnFactory
    max_shard_bytes: int

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        shard = self.dataset.shards[unit["index"]]
        outputs = UnitOutputs(run, unit["unit_id"], self.max_shard_bytes)
        process_shard(self.dataset, shard, outputs, _batch_fn_for(self.factory))
        return outputs.record()


def already_done(run: StageRun) -> Manifest | None:
    """Say so and return the manifest when this exact run already finished."""
    manifest = run.completed_manifest()
    if manifest is not None:
        print(
            f"[{run.stage}] already complete in {run.out}: {len(manifest.shards)} shards, "
            f"{manifest.rows:,} documents; nothing to do (pass --overwrite to redo)",
            file=sys.stderr,
        )
    return manifest


def map_dataset(
    input_dir: str | Path,
    out_dir: str | Path,
    stage: str,
    config: dict[str, Any],
    factory: BatchFnFactory,
    *,
    overwrite: bool = False,
    executor: Executor | None = None,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
) -> Manifest:
    """Run a per-batch stage over a whole dataset: one unit per input shard, resumable."""
    dataset = Dataset.open(input_dir)
    run = StageRun(
        Path(out_dir), stage, {**config, "input": str(input_dir), "input_fingerprint": dataset_fingerprint(dataset)}
    )
    if not overwrite and (manifest := already_done(run)) is not None:
        return manifest
    check_document_columns(dataset)
    run.prepare(overwrite)
    if executor is None:
        from corpusmill.pipelines.execution import run_tasks as executor
    units = [{"unit_id": f"s{i:05d}", "index": i, "shard": shard.name} for i, shard in enumerate(dataset.shards)]
    records = run.run_phase("map", units, _MapShard(dataset, factory, max_shard_bytes), executor)
    return run.finish(records)
