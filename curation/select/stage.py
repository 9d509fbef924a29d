"""`corpusmill select IN --out OUT --where EXPR`: keep the rows a predicate over columns selects.

Annotate first, select later: `classify` and `quality` add columns and never drop a row, and
this stage turns thresholds into a dataset, so changing a threshold re-runs only this. The
predicate is the restricted language of :mod:`corpusmill.curation.select.expression`, checked
against every input shard's schema before any work. Removed rows are counted under the reason
``select`` and listed, with the expression, in ``OUT/removed.parquet``, assembled from one part
per unit so an interrupted run resumes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpusmill.curation.atomic import atomic_path
from corpusmill.curation.command import StageCommand
from corpusmill.curation.dataset import DEFAULT_SHARD_BYTES, Dataset, Manifest, concatenate_parquet
from corpusmill.curation.documents import check_document_columns
from corpusmill.curation.errors import ConfigError
from corpusmill.curation.executor import Executor
from corpusmill.curation.options import option
from corpusmill.curation.select.expression import (
    ColumnType,
    ExpressionError,
    Predicate,
    columns_from_schemas,
    compile_predicate,
    parse,
)
from corpusmill.curation.shard_map import process_shard
from corpusmill.curation.stage import StageRun, shard_units
from corpusmill.curation.unit_outputs import BatchOutcome, UnitOutputs

STAGE = "select"
PHASE = "select"
REASON = "select"
REMOVED_FILE = "removed.parquet"
REMOVED_SCHEMA = pa.schema([("id", pa.string()), ("reason", pa.string())])
T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class SelectOptions:
    """`corpusmill select IN --out OUT --where EXPR`."""

    input: str = option(positional=True, help="input dataset directory")
    out: str = option(help="output dataset directory")
    where: str = option(
        metavar="EXPR",
        help="keep the rows this predicate selects, e.g. \"quality_bucket == 'high' and lang in ['en', 'de']\" "
        "(comparisons, and/or/not, in [...], is null, 'v' in list_column, + - * /; see the README)",
    )

    def __post_init__(self) -> None:
        # Syntax is checked as soon as the options exist (a pipeline checks every step before
        # running the first); the columns are checked when the input is known.
        where_error(lambda: parse(self.where))


def where_error(check: Callable[[], T]) -> T:
    """Run ``check`` and name the option in its error: the CLI flag and the YAML key are one option."""
    try:
        return check()
    except ExpressionError as error:
        raise ConfigError(f"--where: {error}") from None


def input_columns(dataset: Dataset) -> tuple[ColumnType, ...]:
    """The columns of every shard, from their Parquet footers (no data is read)."""
    return columns_from_schemas(pq.read_schema(dataset.shard_path(shard)) for shard in dataset.shards)


@dataclass(frozen=True)
class _SelectShard:
    """One unit: a shard's selected rows to OUT/shards, its removed ids to a part of removed.parquet."""

    dataset: Dataset
    where: str
    columns: tuple[ColumnType, ...]
    max_shard_bytes: int

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        predicate = compile_predicate(self.where, self.columns)  # checked on the driver; microseconds here
        outputs = UnitOutputs(run, unit["unit_id"], self.max_shard_bytes)
        removed_ids: list[pa.Array] = []
        process_shard(self.dataset, self.dataset.shards[unit["index"]], outputs, _Selector(predicate, removed_ids))
        if any(len(ids) for ids in removed_ids):
            ids = pa.concat_arrays(removed_ids)
            part = pa.table(
                {"id": ids, "reason": pa.array([self.where] * len(ids), pa.string())}, schema=REMOVED_SCHEMA
            )
            with atomic_path(_removed_part(run, unit["unit_id"])) as tmp:
                pq.write_table(part, tmp)
        return outputs.record()


@dataclass(frozen=True)
class _Selector:
    """The batch function: split valid documents by the predicate, remembering the removed ids."""

    predicate: Predicate
    removed_ids: list[pa.Array]

    def __call__(self, table: pa.Table) -> BatchOutcome:
        selected = self.predicate.mask(table)
        removed = table.filter(pc.invert(selected))
        self.removed_ids.append(removed["id"].combine_chunks())
        return BatchOutcome(kept=table.filter(selected), removed={REASON: removed})


def _removed_part(run: StageRun, unit_id: str) -> Path:
    # Under the unit's own phase directory: a retried unit first deletes what a crashed attempt left.
    return run.work_dir(PHASE) / f"{unit_id}.parquet"


def select(options: SelectOptions, *, executor: Executor, overwrite: bool = False) -> Manifest:
    """Keep the rows ``options.where`` selects; every check happens before OUT is touched."""
    dataset = Dataset.open(options.input)
    check_document_columns(dataset)
    columns = input_columns(dataset)
    if dataset.shards:  # an empty dataset (everything removed upstream) has no schema to check against
        where_error(lambda: compile_predicate(options.where, columns))
    config = {"input": str(options.input), "input_fingerprint": dataset.fingerprint(), "where": options.where}
    run = StageRun(Path(options.out), STAGE, config)
    if (finished := run.claim(executor, overwrite)) is not None:
        return Manifest.from_dict(finished)
    units = shard_units(dataset)
    records = run.run_phase(PHASE, units, _SelectShard(dataset, options.where, columns, DEFAULT_SHARD_BYTES), executor)
    parts = [_removed_part(run, unit["unit_id"]) for unit in units]
    concatenate_parquet(parts, run.out / REMOVED_FILE, REMOVED_SCHEMA)
    return run.finish(records)


COMMANDS = [
    StageCommand(
        ("select",),
        "keep the documents a predicate over their columns selects (--where); the rest go to removed.parquet",
        SelectOptions,
        select,
    )
]
