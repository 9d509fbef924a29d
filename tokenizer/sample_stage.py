"""`corpusmill tokenizer sample IN... --out DIR`: a seeded, up-sampled training sample.

Two resumable phases over Ray, one unit per input shard:
  count  documents and bytes per (category, language) group
  draw   each document's copies from its group's rate; documents drawn at least once
         are written with a ``sample_copies`` column, the rest are counted as not_sampled
The output is a document dataset (every input column kept) plus ``composition.json``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpusmill.curation.atomic import write_json_atomic
from corpusmill.curation.dataset import Dataset, Manifest
from corpusmill.curation.shard_map import (
    BatchOutcome,
    UnitOutputs,
    already_done,
    dataset_fingerprint,
    process_shard,
    split_invalid_documents,
)
from corpusmill.curation.stage import Executor, StageRun
from corpusmill.tokenizer.composition import COMPOSITION_FILE, composition_report, format_composition
from corpusmill.tokenizer.sampling import (
    GroupKey,
    GroupTally,
    SamplingError,
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
        parts, offset = [], 0
        for batch in dataset.iter_batches(shard):
            rows = np.arange(offset, offset + batch.num_rows)
            offset += batch.num_rows
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


def sample(
    inputs: list[str], out: str | Path, plan: SamplingPlan, *, overwrite: bool = False, executor: Executor | None = None
) -> Manifest:
    """Draw the sample of ``inputs`` into ``out``; returns its manifest (resumes an interrupted run)."""
    datasets = [Dataset.open(path) for path in inputs]
    for path, dataset in zip(inputs, datasets):
        for shard in dataset.shards:
            require_classified(pq.read_schema(dataset.shard_path(shard)), f"{path}/{shard.name}")
    config = {
        **asdict(plan),
        "multipliers": dict(sorted(plan.multipliers.items())),
        "inputs": [str(path) for path in inputs],
        "input_fingerprints": [dataset_fingerprint(d) for d in datasets],
    }
    run = StageRun(Path(out), STAGE, config)
    if not overwrite and (manifest := already_done(run)) is not None:
        return manifest
    run.prepare(overwrite)
    if executor is None:
        from corpusmill.pipelines.execution import run_tasks as executor
    units = [
        {"unit_id": f"i{i:03d}s{j:05d}", "input_index": i, "index": j, "shard": shard.name}
        for i, (path, dataset) in enumerate(zip(inputs, datasets))
        for j, shard in enumerate(dataset.shards)
    ]
    counted = run.run_phase("count", units, _CountUnit(tuple(datasets)), executor)
    before = merge_tallies([_decode_tallies(record["groups"]) for record in counted])
    rates = sampling_rates(before, plan)
    rate_rows = [[c, lang, rate] for (c, lang), rate in sorted(rates.items())]
    records = run.run_phase("draw", units, _DrawUnit(tuple(datasets), rate_rows, plan.seed), executor)
    after: dict[GroupKey, dict[str, int]] = {}
    for record in records:
        for category, language, docs, copies, nbytes in record["drawn"]:
            entry = after.setdefault((category, language), {"docs": 0, "copies": 0, "bytes": 0})
            for name, value in (("docs", docs), ("copies", copies), ("bytes", nbytes)):
                entry[name] += value
    report = composition_report(plan, before, after, rates)
    write_json_atomic(run.out / COMPOSITION_FILE, report)
    print(format_composition(report), file=sys.stderr)
    return run.finish(records)


def parse_multipliers(pairs: list[str]) -> dict[str, float]:
    multipliers = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            multipliers[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise SamplingError(f"--upsample {pair!r}: expected NAME=FACTOR, e.g. multilingual=4 or de=2.5")
    return multipliers


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="classified datasets (output of `corpusmill classify`)")
    parser.add_argument("--out", required=True, help="directory for the sample dataset")
    parser.add_argument(
        "--upsample",
        action="extend",
        nargs="+",
        default=[],
        metavar="NAME=FACTOR",
        help="multiply a category (english, multilingual, code), a language (de, ja) or a code language "
        "(Python) by FACTOR, e.g. --upsample multilingual=3 code=0.5; a language factor overrides "
        "--temperature for that language",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="temperature sampling over natural languages: shares p become p^(1/T) (T=1 keeps the mix; 3-5 is common)",
    )
    parser.add_argument(
        "--max-bytes", type=float, default=None, help="cap on the expected sample size in bytes (e.g. 2e9)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw (default 0)")


def main(args: argparse.Namespace) -> Manifest:
    from corpusmill.pipelines.cli import CliError

    try:
        plan = SamplingPlan(
            multipliers=parse_multipliers(args.upsample),
            temperature=args.temperature,
            max_bytes=None if args.max_bytes is None else int(args.max_bytes),
            seed=args.seed,
        )
        return sample(args.inputs, args.out, plan, overwrite=args.overwrite)
    except SamplingError as error:
        raise CliError(str(error)) from error
