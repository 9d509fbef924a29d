"""What one unit writes: document shards, reject shards and its share of the accounting."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from corpusmill.curation.dataset import (
    DEFAULT_SHARD_BYTES,
    REJECTS_DIR,
    SHARDS_DIR,
    ShardWriter,
    describe_columns,
    text_bytes,
)
from corpusmill.curation.stage import StageRun
from corpusmill.curation.stats import StageStats


@dataclass
class BatchOutcome:
    """Where each row of a batch went: kept (possibly annotated), removed by reason, or rejected."""

    kept: pa.Table
    removed: dict[str, pa.Table] = field(default_factory=dict)
    rejected: pa.Table | None = None


class UnitOutputs:
    """One unit's document shards, reject shards and accounting."""

    def __init__(self, run: StageRun, unit_id: str, max_shard_bytes: int = DEFAULT_SHARD_BYTES, under: str = ""):
        """``under`` (a folder relative to the output) holds the unit's ``shards/`` and ``rejects/``
        when a later phase, not this one, decides what the dataset keeps (ingest's id check)."""
        self.stage = run.stage
        self.unit_id = unit_id
        self.stats = StageStats(run.stage)
        self.docs = ShardWriter(run.out, str(Path(under, SHARDS_DIR)), unit_id, max_shard_bytes)
        self.rejects = ShardWriter(run.out, str(Path(under, REJECTS_DIR)), unit_id)

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
