"""The document contract, checked the same way by every stage.

A document row has non-null ``id``, ``text`` and ``source`` strings and text that is not
blank. Rows that break it are rejected with a reason (never silently dropped, never a
crash); a shard that lacks a required column is an error named before any work starts.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpusmill.curation.dataset import REQUIRED_COLUMNS, Dataset, DatasetError, is_blank, reject_table


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
        names = dataset.read_schema(shard).names
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
