"""The document dataset format: Parquet shards plus a manifest, owned by this module alone.

Layout of a dataset directory::

    manifest.json      schema version, producing stage and config, shard list, columns
    stats.json         the producing stage's accounting (see curation.stats)
    shards/*.parquet   documents: required columns id, text, source; any others kept
    rejects/*.parquet  bad input with a reason (REJECT_SCHEMA); has its own manifest

Every file is written under a temporary name and renamed into place, so a reader
never sees a partial shard. A directory of plain Parquet files without a manifest
also opens as a dataset, so corpusmill can start from data produced elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpusmill.curation.atomic import TMP_MARKER, atomic_path, read_json, write_json_atomic
from corpusmill.curation.errors import CorpusmillError

SCHEMA_VERSION = 1
REQUIRED_COLUMNS = ("id", "text", "source")
MANIFEST_FILE = "manifest.json"
STATS_FILE = "stats.json"
SHARDS_DIR = "shards"
REJECTS_DIR = "rejects"
DEFAULT_SHARD_BYTES = 256 * 2**20
DEFAULT_BATCH_ROWS = 8192
REJECT_RAW_CAP = 2**20

REJECT_SCHEMA = pa.schema(
    [
        ("stage", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("location", pa.string()),
        ("source", pa.string()),
        ("id", pa.string()),
        ("raw", pa.binary()),  # the offending record, capped at REJECT_RAW_CAP bytes
        ("raw_bytes", pa.int64()),  # its full size, counted in stats
    ]
)


class DatasetError(CorpusmillError, ValueError):
    """A directory is not a usable document dataset; the message says why and what to do."""


@dataclass(frozen=True)
class ShardInfo:
    """One Parquet file of a dataset; ``name`` is relative to the dataset root."""

    name: str
    rows: int
    file_bytes: int
    text_bytes: int


@dataclass
class Manifest:
    stage: str
    config: dict[str, Any]
    shards: list[ShardInfo]
    columns: dict[str, str] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    @property
    def rows(self) -> int:
        return sum(shard.rows for shard in self.shards)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["shards"] = [asdict(shard) for shard in self.shards]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise DatasetError(
                f"manifest schema_version {version!r} is not {SCHEMA_VERSION}; re-run the producing stage"
            )
        fields = {k: v for k, v in data.items() if k != "shards"}
        return cls(shards=[ShardInfo(**shard) for shard in data["shards"]], **fields)


def text_bytes(table: pa.Table, column: str = "text") -> int:
    """UTF-8 size of a string column: the unit all byte accounting uses."""
    if table.num_rows == 0:
        return 0
    return int(pc.sum(pc.binary_length(table[column])).as_py() or 0)


def is_blank(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Empty or whitespace-only, without copying the text (unlike trimming it)."""
    return pc.or_(pc.equal(pc.binary_length(texts), 0), pc.utf8_is_space(texts))


def concatenate_parquet(parts: list[Path], final: Path, schema: pa.Schema) -> None:
    """One Parquet file from per-unit parts, in the given order, one part in memory at a time;
    missing parts (units that had nothing to say) are skipped."""
    with atomic_path(final) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for part in parts:
                if part.exists():
                    writer.write_table(pq.read_table(part).cast(schema))


def write_part(path: Path, table: pa.Table, schema: pa.Schema) -> None:
    """One unit's slice of a side table (duplicates, clusters), for ``concatenate_parquet`` to join."""
    with atomic_path(path) as tmp:
        pq.write_table(table.cast(schema), tmp)


def write_manifest(root: Path, manifest: Manifest) -> None:
    write_json_atomic(root / MANIFEST_FILE, manifest.to_dict())


def describe_columns(schemas: list[pa.Schema]) -> dict[str, str]:
    """Column name -> Arrow type, first seen wins: the manifest's summary of a dataset's schema."""
    columns: dict[str, str] = {}
    for schema in schemas:
        for name, dtype in zip(schema.names, schema.types):
            columns.setdefault(name, str(dtype))
    return columns


class Dataset:
    """Read access to a dataset directory (with a manifest, or a bare Parquet tree)."""

    def __init__(self, root: Path, shards: list[ShardInfo], manifest: Manifest | None):
        self.root = root
        self.shards = shards
        self.manifest = manifest

    @classmethod
    def open(cls, path: str | Path) -> Dataset:
        root = Path(path)
        if (root / MANIFEST_FILE).exists():
            manifest = Manifest.from_dict(read_json(root / MANIFEST_FILE))
            return cls(root, manifest.shards, manifest)
        if root.is_file() and root.suffix == ".parquet":
            return cls(root.parent, [_describe_parquet(root.parent, root)], None)
        if not root.is_dir():
            raise DatasetError(f"{root}: no such dataset directory")
        files = sorted(p for p in root.rglob("*.parquet") if TMP_MARKER not in p.name and REJECTS_DIR not in p.parts)
        if not files:
            raise DatasetError(f"{root}: no {MANIFEST_FILE} and no Parquet files; run `corpusmill ingest` first")
        return cls(root, [_describe_parquet(root, p) for p in files], None)

    @property
    def num_rows(self) -> int:
        return sum(shard.rows for shard in self.shards)

    def shard_path(self, shard: ShardInfo) -> Path:
        return self.root / shard.name

    def iter_batches(
        self, shard: ShardInfo, columns: list[str] | None = None, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> Iterator[pa.Table]:
        parquet = pq.ParquetFile(self.shard_path(shard))
        present = [c for c in columns if c in parquet.schema_arrow.names] if columns else None
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=present):
            yield pa.Table.from_batches([batch])

    def iter_numbered_batches(
        self, shard: ShardInfo, columns: list[str] | None = None, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> Iterator[tuple[pa.Table, np.ndarray]]:
        """Batches of one shard with each row's position in the shard (for rejects' locations)."""
        offset = 0
        for batch in self.iter_batches(shard, columns, batch_rows):
            yield batch, np.arange(offset, offset + batch.num_rows)
            offset += batch.num_rows

    def fingerprint(self) -> str:
        """Identifies the dataset's content, so a resumed run refuses a changed input."""
        listing = json.dumps([asdict(s) for s in self.shards], sort_keys=True).encode()
        return hashlib.sha256(listing).hexdigest()[:16]

    def read_table(self, columns: list[str] | None = None) -> pa.Table:
        """The whole dataset in memory: for tests, small datasets and reports."""
        tables = [pq.read_table(self.shard_path(s), columns=columns) for s in self.shards]
        if not tables:
            return pa.table({name: pa.array([], pa.string()) for name in columns or REQUIRED_COLUMNS})
        return pa.concat_tables(tables, promote_options="permissive")


def _describe_parquet(root: Path, path: Path) -> ShardInfo:
    """Footer-only description; ``text_bytes`` is the text column's uncompressed Parquet size,
    an estimate (it includes offsets), since a dataset without a manifest has no exact count."""
    metadata = pq.ParquetFile(path).metadata
    names = [metadata.schema.column(i).name for i in range(metadata.num_columns)]
    estimate = 0
    if "text" in names:
        column = names.index("text")
        estimate = sum(
            metadata.row_group(g).column(column).total_uncompressed_size for g in range(metadata.num_row_groups)
        )
    return ShardInfo(str(path.relative_to(root)), metadata.num_rows, path.stat().st_size, estimate)


class ShardWriter:
    """Streams tables into size-capped Parquet shards ``{prefix}-{part:05d}.parquet``.

    Each shard is written under a temporary name and renamed when complete. A
    batch whose columns differ from the open shard's starts a new shard rather
    than failing, so heterogeneous metadata never aborts a stage.
    """

    def __init__(self, root: Path, subdir: str, prefix: str, max_shard_bytes: int = DEFAULT_SHARD_BYTES):
        self.root = root
        self.directory = root / subdir
        self.prefix = prefix
        self.max_shard_bytes = max_shard_bytes
        self.shards: list[ShardInfo] = []
        self.schemas: list[pa.Schema] = []
        self._writer: pq.ParquetWriter | None = None
        self._tmp: Path | None = None
        self._rows = 0
        self._text_bytes = 0

    def write(self, table: pa.Table, nbytes: int | None = None) -> None:
        if table.num_rows == 0:
            return
        if self._writer is not None and not self._writer.schema.equals(table.schema):
            table = self._conform(table)
        if self._writer is None:
            self._open(table.schema)
        assert self._writer is not None
        self._writer.write_table(table)
        self._rows += table.num_rows
        self._text_bytes += text_bytes(table) if nbytes is None else nbytes
        if self._text_bytes >= self.max_shard_bytes:
            self._close_shard()

    def close(self) -> list[ShardInfo]:
        self._close_shard()
        return self.shards

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._tmp is not None and self._tmp.exists():
            self._tmp.unlink()
        self._writer = None

    def _conform(self, table: pa.Table) -> pa.Table:
        """Cast to the open shard's schema, or roll over to a new shard when impossible."""
        assert self._writer is not None
        schema = self._writer.schema
        if set(table.schema.names) <= set(schema.names):
            missing = [n for n in schema.names if n not in table.schema.names]
            for name in missing:
                table = table.append_column(name, pa.nulls(table.num_rows, schema.field(name).type))
            try:
                return table.select(schema.names).cast(schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        self._close_shard()
        return table

    def _open(self, schema: pa.Schema) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"{self.prefix}-{len(self.shards):05d}.parquet"
        self._tmp = final.with_name(final.name + TMP_MARKER + "w")
        # Dictionary-encoding document text never pays off and costs ~15% of write time.
        plain = [name for name in ("text",) if name in schema.names]
        dictionary = [name for name in schema.names if name not in plain]
        self._writer = pq.ParquetWriter(self._tmp, schema, compression="zstd", use_dictionary=dictionary)
        self.schemas.append(schema)

    def _close_shard(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        assert self._tmp is not None
        final = self._tmp.with_name(self._tmp.name.split(TMP_MARKER)[0])
        self._tmp.replace(final)
        name = str(final.relative_to(self.root))
        self.shards.append(ShardInfo(name, self._rows, final.stat().st_size, self._text_bytes))
        self._writer, self._tmp, self._rows, self._text_bytes = None, None, 0, 0


def reject_table(
    stage: str,
    reasons: list[str],
    details: list[str],
    locations: list[str],
    sources: list[str | None],
    ids: list[str | None],
    raws: list[bytes],
    raw_sizes: list[int] | None = None,
) -> pa.Table:
    """Build reject records; ``raw`` is capped but ``raw_bytes`` keeps the true size
    (pass ``raw_sizes`` when only a prefix of the record was read)."""
    return pa.table(
        {
            "stage": [stage] * len(reasons),
            "reason": reasons,
            "detail": details,
            "location": locations,
            "source": sources,
            "id": ids,
            "raw": [raw[:REJECT_RAW_CAP] for raw in raws],
            "raw_bytes": raw_sizes if raw_sizes is not None else [len(raw) for raw in raws],
        },
        schema=REJECT_SCHEMA,
    )
