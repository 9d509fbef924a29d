"""The common stage shape: one pure function applied to every Arrow batch of every shard.

Stages hand ``map_dataset`` a factory for their batch function (so models load
once per worker process, not once per batch); this module owns reading shards,
rejecting rows that break the document contract, writing outputs and counting.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from corpusmill.curation.dataset import DEFAULT_SHARD_BYTES, Dataset, Manifest, ShardInfo, text_bytes
from corpusmill.curation.documents import check_document_columns, split_invalid_documents
from corpusmill.curation.executor import Executor
from corpusmill.curation.stage import StageRun, shard_units
from corpusmill.curation.unit_outputs import BatchOutcome, UnitOutputs

BatchFn = Callable[[pa.Table], BatchOutcome]
BatchFnFactory = Callable[[], BatchFn]


def process_shard(dataset: Dataset, shard: ShardInfo, outputs: UnitOutputs, batch_fn: BatchFn) -> None:
    """Stream one input shard through ``batch_fn`` into ``outputs``."""
    for batch, rows in dataset.iter_numbered_batches(shard):
        outputs.stats.add_input(batch.num_rows, text_bytes(batch))
        valid, rejected = split_invalid_documents(batch, outputs.stage, shard.name, rows)
        outputs.reject(rejected)
        outputs.add(batch_fn(valid))


def remove_rows(
    dataset: Dataset, shard: ShardInfo, outputs: UnitOutputs, removed_rows: np.ndarray, reason: str
) -> None:
    """Stream one shard into ``outputs`` without the rows at positions ``removed_rows``, counted as ``reason``.

    The filter phase of the dedup stages: every other row is kept (or rejected) in input order.
    """
    for batch, rows in dataset.iter_numbered_batches(shard):
        outputs.stats.add_input(batch.num_rows, text_bytes(batch))
        removed = np.isin(rows, removed_rows)
        outputs.remove(reason, batch.filter(pa.array(removed)))
        valid, rejected = split_invalid_documents(
            batch.filter(pa.array(~removed)), outputs.stage, shard.name, rows[~removed]
        )
        outputs.reject(rejected)
        outputs.keep(valid)


_FACTORY_RESULTS: dict[Hashable, BatchFn] = {}


def _batch_fn_for(factory: BatchFnFactory) -> BatchFn:
    """Build a batch function once per worker process (Ray reuses workers across units)."""
    if not isinstance(factory, Hashable):
        return factory()
    if factory not in _FACTORY_RESULTS:
        _FACTORY_RESULTS[factory] = factory()
    return _FACTORY_RESULTS[factory]


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


def map_dataset(
    input_dir: str | Path,
    out_dir: str | Path,
    stage: str,
    config: dict[str, Any],
    factory: BatchFnFactory,
    *,
    executor: Executor,
    overwrite: bool = False,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
) -> Manifest:
    """Run a per-batch stage over a whole dataset: one unit per input shard, resumable."""
    dataset = Dataset.open(input_dir)
    run = StageRun(
        Path(out_dir),
        stage,
        {**config, "input": str(input_dir), "input_fingerprint": dataset.fingerprint()},
        inputs=(str(input_dir),),
    )
    check_document_columns(dataset)
    if (finished := run.claim(executor, overwrite)) is not None:
        return Manifest.from_dict(finished)
    records = run.run_phase("map", shard_units(dataset), _MapShard(dataset, factory, max_shard_bytes), executor)
    return run.finish(records)
