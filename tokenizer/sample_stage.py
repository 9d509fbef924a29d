"""`corpusmill tokenizer sample IN... --out DIR`: a seeded, up-sampled training sample.

Two resumable phases, one unit per input shard, run by the executor it is handed (Ray in production):
  count  documents and bytes per (category, language) group
  draw   each document's copies from its group's rate; documents drawn at least once
         are written with a ``sample_copies`` column, the rest are counted as not_sampled
The output is a document dataset (every input column kept) plus ``composition.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpusmill.curation.atomic import read_json, write_json_atomic
from corpusmill.curation.command import StageCommand
from corpusmill.curation.dataset import Dataset, Manifest
from corpusmill.curation.documents import check_document_columns, split_invalid_documents
from corpusmill.curation.executor import Executor
from corpusmill.curation.options import option
from corpusmill.curation.shard_map import process_shard
from corpusmill.curation.stage import StageRun
from corpusmill.curation.unit_outputs import BatchOutcome, UnitOutputs
from corpusmill.tokenizer.composition import COMPOSITION_FILE, composition_report, format_composition
from corpusmill.tokenizer.sampling import (
    GroupKey,
    GroupTally,
    SamplingPlan,
    draw_copies,
    group_keys,
    merge_tallies,
    require_classified,
    sampling_rates,
    tally_groups,
)

STAGE = "tokenizer_sample"
COPIES_COLUMN = "sample_copies"
NOT_SAMPLED = "not_sampled"


def _shard(datasets: tuple[Dataset, ...], unit: dict[str, Any]) -> tuple[Dataset, Any]:
    """The unit's shard of the datasets planned on the driver (never re-listed on a worker)."""
    dataset = datasets[unit["input_index"]]
    return dataset, dataset.shards[unit["index"]]


def _encode_tallies(tallies: dict[GroupKey, GroupTally]) -> list[list[Any]]:
    return [[category, language, t.docs, t.bytes] for (category, language), t in sorted(tallies.items())]


def _decode_tallies(rows: list[list[Any]]) -> dict[GroupKey, GroupTally]:
    return {(category, language): GroupTally(docs, nbytes) for category, language, docs, nbytes in rows}


@dataclass(frozen=True)
class _CountUnit:
    datasets: tuple[Dataset, ...]

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        dataset, shard = _shard(self.datasets, unit)
        parts = []
        for batch, rows in dataset.iter_numbered_batches(shard):
            valid, _ = split_invalid_documents(batch, STAGE, shard.name, rows)
            parts.append(tally_groups(valid))
        return {"unit_id": unit["unit_id"], "groups": _encode_tallies(merge_tallies(parts))}


@dataclass(frozen=True)
class _DrawBatch:
    """Batch function of the draw phase; also counts what it drew per group."""

    rates: dict[GroupKey, float]
    seed: int
    drawn: dict[GroupKey, dict[str, int]]

    def __call__(self, table: pa.Table) -> BatchOutcome:
        categories, languages = group_keys(table)
        keys = list(zip(categories, languages))
        copies = draw_copies(table["id"], np.array([self.rates[key] for key in keys], dtype=np.float64), self.seed)
        sizes = pc.binary_length(table["text"]).to_numpy(zero_copy_only=False)
        for key, count, size in zip(keys, copies, sizes):
            if count:
                entry = self.drawn.setdefault(key, {"docs": 0, "copies": 0, "bytes": 0})
                entry["docs"] += 1
                entry["copies"] += int(count)
                entry["bytes"] += int(count) * int(size)
        chosen = pa.array(copies > 0)
        kept = table.filter(chosen).append_column(COPIES_COLUMN, pa.array(copies[copies > 0], pa.int32()))
        return BatchOutcome(kept=kept, removed={NOT_SAMPLED: table.filter(pc.invert(chosen))})


@dataclass(frozen=True)
class _DrawUnit:
    datasets: tuple[Dataset, ...]
    rates: list[list[Any]]  # [category, language, rate]: JSON-friendly for Ray
    seed: int

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        dataset, shard = _shard(self.datasets, unit)
        outputs = UnitOutputs(run, unit["unit_id"])
        draw = _DrawBatch({(c, lang): rate for c, lang, rate in self.rates}, self.seed, {})
        process_shard(dataset, shard, outputs, draw)
        drawn = [[c, lang, v["docs"], v["copies"], v["bytes"]] for (c, lang), v in sorted(draw.drawn.items())]
        return {**outputs.record(), "drawn": drawn}


@dataclass(frozen=True, kw_only=True)
class SampleOptions(SamplingPlan):
    """`corpusmill tokenizer sample IN... --out DIR [--upsample NAME=FACTOR ...] [--temperature T] [--max-bytes N]`."""

    inputs: tuple[str, ...] = option(positional=True, help="classified datasets (output of `corpusmill classify`)")
    out: str = option(help="directory for the sample dataset")


@dataclass(frozen=True)
class SampleResult:
    """The sample dataset's manifest and its composition report (the table the CLI shows)."""

    manifest: Manifest
    composition: dict[str, Any]


def _open_classified(inputs: tuple[str, ...]) -> list[Dataset]:
    datasets = [Dataset.open(path) for path in inputs]
    for path, dataset in zip(inputs, datasets):
        check_document_columns(dataset)
        for shard in dataset.shards:
            require_classified(pq.read_schema(dataset.shard_path(shard)), f"{path}/{shard.name}")
    return datasets


def _merge_drawn(records: list[dict[str, Any]]) -> dict[GroupKey, dict[str, int]]:
    after: dict[GroupKey, dict[str, int]] = {}
    for record in records:
        for category, language, docs, copies, nbytes in record["drawn"]:
            entry = after.setdefault((category, language), {"docs": 0, "copies": 0, "bytes": 0})
            for name, value in (("docs", docs), ("copies", copies), ("bytes", nbytes)):
                entry[name] += value
    return after


def sample(options: SampleOptions, *, executor: Executor, overwrite: bool = False) -> SampleResult:
    """Draw the sample of ``options.inputs`` into ``options.out`` (resumes an interrupted run)."""
    datasets = _open_classified(options.inputs)
    config = {
        **options.record(),
        "inputs": [str(path) for path in options.inputs],
        "input_fingerprints": [dataset.fingerprint() for dataset in datasets],
    }
    run = StageRun(Path(options.out), STAGE, config, inputs=tuple(str(path) for path in options.inputs))
    if (finished := run.claim(executor, overwrite)) is not None:
        return SampleResult(Manifest.from_dict(finished), read_json(run.out / COMPOSITION_FILE))
    units = [
        {"unit_id": f"i{i:03d}s{j:05d}", "input_index": i, "index": j, "shard": shard.name}
        for i, dataset in enumerate(datasets)
        for j, shard in enumerate(dataset.shards)
    ]
    counted = run.run_phase("count", units, _CountUnit(tuple(datasets)), executor)
    before = merge_tallies([_decode_tallies(record["groups"]) for record in counted])
    rates = sampling_rates(before, options)
    rate_rows = [[c, lang, rate] for (c, lang), rate in sorted(rates.items())]
    records = run.run_phase("draw", units, _DrawUnit(tuple(datasets), rate_rows, options.seed), executor)
    report = composition_report(options, before, _merge_drawn(records), rates)
    write_json_atomic(run.out / COMPOSITION_FILE, report)
    return SampleResult(run.finish(records), report)


def render_sample(result: SampleResult) -> str:
    return format_composition(result.composition)


COMMANDS = [
    StageCommand(
        ("tokenizer", "sample"),
        "draw a seeded, up-sampled training sample from classified datasets",
        SampleOptions,
        sample,
        render_sample,
    )
]
