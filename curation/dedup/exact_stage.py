"""`corpusmill dedup exact`: global, memory-bounded, partitioning-independent exact dedup.

Three resumable phases over Ray:
  hash    one unit per input shard: 128-bit text hashes, hash-partitioned scratch
  group   one unit per partition: smallest id of each hash group wins; the losers
          are routed back, partitioned by the shard they live in
  filter  one unit per input shard: drop its losers, write kept documents and
          the shard's slice of duplicates.parquet
No step holds more than one partition or one shard, so the dataset may exceed memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from corpusmill.curation.command import StageCommand
from corpusmill.curation.dataset import DEFAULT_SHARD_BYTES, Dataset, Manifest, concatenate_parquet, write_part
from corpusmill.curation.dedup.exact import select_duplicates, text_hashes
from corpusmill.curation.documents import check_document_columns, valid_mask
from corpusmill.curation.executor import Executor
from corpusmill.curation.options import option
from corpusmill.curation.partition import (
    check_partitions,
    hash_partition,
    partitions_for,
    read_partition,
    write_partitioned,
)
from corpusmill.curation.stage import StageRun, shard_units
from corpusmill.curation.stats import StageStats
from corpusmill.curation.shard_map import remove_rows
from corpusmill.curation.unit_outputs import UnitOutputs

STAGE = "dedup_exact"
REASON = "exact_duplicate"
DUPLICATES_FILE = "duplicates.parquet"
DUPLICATES_SCHEMA = pa.schema([("id", pa.string()), ("kept_id", pa.string())])


@dataclass(frozen=True, kw_only=True)
class DedupExactOptions:
    """`corpusmill dedup exact IN --out OUT [--partitions N]`."""

    input: str = option(positional=True, help="input dataset directory")
    out: str = option(help="output dataset directory")
    partitions: int | None = option(
        None,
        help="hash partitions for the global grouping (default: one per 2M documents); "
        "changes memory per task, never the result",
    )


@dataclass(frozen=True)
class _Plan:
    dataset: Dataset
    num_partitions: int
    max_shard_bytes: int

    def shard(self, index: int) -> tuple[Dataset, Any]:
        return self.dataset, self.dataset.shards[index]


@dataclass(frozen=True)
class _HashShard:
    plan: _Plan

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        dataset, shard = self.plan.shard(unit["index"])
        pieces = []
        for batch, rows in dataset.iter_numbered_batches(shard, columns=["id", "text", "source"]):
            valid_rows = valid_mask(batch, shard.name)
            valid = batch.filter(pa.array(valid_rows))
            hi, lo = text_hashes(valid["text"])
            pieces.append(
                pa.table(
                    {
                        "hi": hi,
                        "lo": lo,
                        "id": valid["id"].cast(pa.string()),
                        "shard": pa.array(np.full(valid.num_rows, unit["index"], dtype=np.uint32)),
                        "row": pa.array(rows[valid_rows].astype(np.uint64)),
                    }
                )
            )
        hashed = pa.concat_tables(pieces) if pieces else _empty_hashed()
        path = run.work_dir("hash") / f"{unit['unit_id']}.arrow"
        write_partitioned(
            path, hashed, hash_partition(hashed["hi"], self.plan.num_partitions), self.plan.num_partitions
        )
        return {"unit_id": unit["unit_id"], "rows": hashed.num_rows}


def _empty_hashed() -> pa.Table:
    return pa.table(
        {
            "hi": pa.array([], pa.uint64()),
            "lo": pa.array([], pa.uint64()),
            "id": pa.array([], pa.string()),
            "shard": pa.array([], pa.uint32()),
            "row": pa.array([], pa.uint64()),
        }
    )


@dataclass(frozen=True)
class _GroupPartition:
    num_shards: int

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        paths = sorted(run.work_dir("hash").glob("*.arrow"))
        hashed = read_partition(paths, unit["partition"])
        removed, groups = select_duplicates(hashed if hashed is not None else _empty_hashed())
        removed = removed.select(["shard", "row", "id", "kept_id"])
        path = run.work_dir("group") / f"{unit['unit_id']}.arrow"
        write_partitioned(path, removed, removed["shard"].to_numpy().astype(np.int64), self.num_shards)
        return {"unit_id": unit["unit_id"], "removed": removed.num_rows, "duplicate_groups": groups}


@dataclass(frozen=True)
class _FilterShard:
    plan: _Plan

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        dataset, shard = self.plan.shard(unit["index"])
        losers = read_partition(sorted(run.work_dir("group").glob("*.arrow")), unit["index"])
        losers = losers.sort_by("row") if losers is not None else pa.table({"row": pa.array([], pa.uint64())})
        outputs = UnitOutputs(run, unit["unit_id"], self.plan.max_shard_bytes)
        remove_rows(dataset, shard, outputs, losers["row"].to_numpy(), REASON)
        if losers.num_rows:
            write_part(
                run.work_dir("duplicates") / f"{unit['unit_id']}.parquet",
                losers.select(["id", "kept_id"]),
                DUPLICATES_SCHEMA,
            )
        return outputs.record()


def _write_duplicates(run: StageRun, shard_units: list[dict[str, Any]]) -> None:
    """The per-shard duplicate lists, in shard order, as one file."""
    parts = [run.work_dir("duplicates") / f"{unit['unit_id']}.parquet" for unit in shard_units]
    concatenate_parquet(parts, run.out / DUPLICATES_FILE, DUPLICATES_SCHEMA)


def dedup_exact(options: DedupExactOptions, *, executor: Executor, overwrite: bool = False) -> Manifest:
    check_partitions(options.partitions)
    dataset = Dataset.open(options.input)
    config = {"input": str(options.input), "input_fingerprint": dataset.fingerprint(), "hash": "xxh3_128"}
    # The partition count changes the scratch layout, not the result: it stays out of the
    # config identity, and a resumed run reuses the count its finished units used.
    run = StageRun(Path(options.out), STAGE, config, inputs=(str(options.input),))
    check_document_columns(dataset)
    if (finished := run.claim(executor, overwrite)) is not None:
        return Manifest.from_dict(finished)
    num_partitions = run.pinned("partitions", options.partitions or partitions_for(dataset.num_rows))
    plan = _Plan(dataset, num_partitions, DEFAULT_SHARD_BYTES)
    units = shard_units(dataset)
    run.run_phase("hash", units, _HashShard(plan), executor)
    partition_units = [{"unit_id": f"p{p:05d}", "partition": p} for p in range(num_partitions)]
    groups = run.run_phase("group", partition_units, _GroupPartition(len(units)), executor)
    records = run.run_phase("filter", units, _FilterShard(plan), executor)
    _write_duplicates(run, units)
    counters = StageStats(STAGE)
    counters.count("partitions", num_partitions)
    counters.count("duplicate_groups", sum(g["duplicate_groups"] for g in groups))
    return run.finish(records, counters)


COMMANDS = [
    StageCommand(
        ("dedup", "exact"),
        "remove documents with identical text (smallest id kept)",
        DedupExactOptions,
        dedup_exact,
    )
]
