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

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from corpusmill.curation.atomic import atomic_path
from corpusmill.curation.dataset import DEFAULT_SHARD_BYTES, Dataset, Manifest, concatenate_parquet, text_bytes
from corpusmill.curation.dedup.exact import select_duplicates, text_hashes
from corpusmill.curation.partition import hash_partition, partitions_for, read_partition, write_partitioned
from corpusmill.curation.shard_map import (
    UnitOutputs,
    already_done,
    check_document_columns,
    dataset_fingerprint,
    split_invalid_documents,
    valid_mask,
)
from corpusmill.curation.stage import Executor, StageRun
from corpusmill.curation.stats import StageStats

STAGE = "dedup_exact"
REASON = "exact_duplicate"
DUPLICATES_FILE = "duplicates.parquet"
DUPLICATES_SCHEMA = pa.schema([("id", pa.string()), ("kept_id", pa.string())])


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
        pieces, offset = [], 0
        for batch in dataset.iter_batches(shard, columns=["id", "text", "source"]):
            rows = np.arange(offset, offset + batch.num_rows)
            offset += batch.num_rows
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
        write_partitioned(path, hashed, hash_partition(hashed["hi"], self.plan.num_partitions), self.plan.num_partitions)
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
        loser_rows = losers["row"].to_numpy()
        outputs = UnitOutputs(run, unit["unit_id"], self.plan.max_shard_bytes)
        offset = 0
        for batch in dataset.iter_batches(shard):
            rows = np.arange(offset, offset + batch.num_rows, dtype=np.uint64)
            offset += batch.num_rows
            outputs.stats.add_input(batch.num_rows, text_bytes(batch))
            duplicate = np.isin(rows, loser_rows)
            outputs.remove(REASON, batch.filter(pa.array(duplicate)))
            keep = pa.array(~duplicate)
            valid, rejected = split_invalid_documents(batch.filter(keep), STAGE, shard.name, rows[~duplicate])
            outputs.reject(rejected)
            outputs.keep(valid)
        if losers.num_rows:
            with atomic_path(run.work_dir("duplicates") / f"{unit['unit_id']}.parquet") as tmp:
                pq.write_table(losers.select(["id", "kept_id"]).cast(DUPLICATES_SCHEMA), tmp)
        return outputs.record()


def _write_duplicates(run: StageRun, shard_units: list[dict[str, Any]]) -> None:
    """The per-shard duplicate lists, in shard order, as one file."""
    parts = [run.work_dir("duplicates") / f"{unit['unit_id']}.parquet" for unit in shard_units]
    concatenate_parquet(parts, run.out / DUPLICATES_FILE, DUPLICATES_SCHEMA)


def dedup_exact(
    input_dir: str | Path,
    out_dir: str | Path,
    *,
    partitions: int | None = None,
    overwrite: bool = False,
    executor: Executor | None = None,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
) -> Manifest:
    dataset = Dataset.open(input_dir)
    num_partitions = partitions or partitions_for(dataset.num_rows)
    config = {"input": str(input_dir), "input_fingerprint": dataset_fingerprint(dataset), "hash": "xxh3_128"}
    # The partition count changes the scratch layout, not the result: it stays out of the
    # config identity, and a resumed run reuses the count its finished units used.
    run = StageRun(Path(out_dir), STAGE, config)
    if not overwrite and (manifest := already_done(run)) is not None:
        return manifest
    check_document_columns(dataset)
    run.prepare(overwrite)
    num_partitions = run.pinned("partitions", num_partitions)
    if executor is None:
        from corpusmill.pipelines.execution import run_tasks as executor
    plan = _Plan(dataset, num_partitions, max_shard_bytes)
    shard_units = [{"unit_id": f"s{i:05d}", "index": i, "shard": s.name} for i, s in enumerate(dataset.shards)]
    run.run_phase("hash", shard_units, _HashShard(plan), executor)
    partition_units = [{"unit_id": f"p{p:05d}", "partition": p} for p in range(num_partitions)]
    groups = run.run_phase("group", partition_units, _GroupPartition(len(shard_units)), executor)
    records = run.run_phase("filter", shard_units, _FilterShard(plan), executor)
    _write_duplicates(run, shard_units)
    counters = StageStats(STAGE)
    counters.count("partitions", num_partitions)
    counters.count("duplicate_groups", sum(g["duplicate_groups"] for g in groups))
    return run.finish(records, counters)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="input dataset directory")
    parser.add_argument("--out", required=True, help="output dataset directory")
    parser.add_argument(
        "--partitions",
        type=int,
        default=None,
        help="hash partitions for the global grouping (default: one per 2M documents); "
        "changes memory per task, never the result",
    )


def main(args: argparse.Namespace) -> Manifest:
    return dedup_exact(args.input, args.out, partitions=args.partitions, overwrite=args.overwrite)

