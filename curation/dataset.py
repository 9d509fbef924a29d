"""The document dataset format: Parquet shards plus a manifest, owned by this module alone.

Layout of a dataset directory::

    manifest.json      schema version, producing stage and config, shard list, columns
    stats.json         the producing stage's accounting (see curation.stats)
    shards/*.parquet   documents: required columns id, text, source; any others kept
    rejects/*.parquet  bad input with a reason (REJECT_SCHEMA); has its own manifest

Every file is written under a temporary name and renamed into place, so a reader
never sees a partial shard. The manifest records each shard's rows, size and content
checksum, and every read checks them first: a shard changed, truncated or damaged after
it was written stops the reading stage with one line naming it, instead of being read
as if it were whole. A directory of plain Parquet files without a manifest also opens
as a dataset, so corpusmill can start from data produced elsewhere.
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
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpusmill.curation.atomic import TMP_MARKER, atomic_path, read_json, temp_sibling, write_json_atomic
from corpusmill.curation.checksums import file_checksum
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


class CorruptShardError(DatasetError):
    """A shard differs from what its manifest recorded, or is not readable Parquet."""


@dataclass(frozen=True)
class ShardInfo:
    """One Parquet file of a dataset; ``name`` is relative to the dataset root.

    ``checksum`` (``xxh3_128:<hex>`` of the file's bytes) is recorded when corpusmill writes
    the shard; Parquet found without a manifest has none.
    """

    name: str
    rows: int
    file_bytes: int
    text_bytes: int
    checksum: str | None = None


@dataclass
class Manifest:
    stage: str
    config: dict[str, Any]
    shards: list[ShardInfo]
    columns: dict[str, str] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    # Raw files a stage read (ingest), each with its size and content checksum.
    inputs: list[dict[str, Any]] = field(default_factory=list)
    # Columns whose type differed between input files, and what they were unified to.
    schema_drift: dict[str, str] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(shard.rows for shard in self.shards)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["shards"] = [asdict(shard) for shard in self.shards]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        version = data.get("schema_version") if isinstance(data, dict) else None
        if version != SCHEMA_VERSION:
            raise DatasetError(
                f"manifest schema_version {version!r} is not {SCHEMA_VERSION}; re-run the producing stage"
            )
        fields = {k: v for k, v in data.items() if k != "shards"}
        try:
            return cls(shards=[ShardInfo(**shard) for shard in data["shards"]], **fields)
        except (KeyError, TypeError) as error:
            raise DatasetError(
                f"a manifest that corpusmill cannot read ({error}); re-run the producing stage"
            ) from error


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


def merge_columns(described: list[dict[str, str]]) -> dict[str, str]:
    """Column name -> Arrow type, first seen wins (an all-null column's ``null`` gives way to a real type)."""
    columns: dict[str, str] = {}
    for mapping in described:
        for name, dtype in mapping.items():
            if columns.get(name, "null") == "null":
                columns[name] = dtype
    return columns


def describe_columns(schemas: list[pa.Schema]) -> dict[str, str]:
    """The manifest's summary of a dataset's schema."""
    return merge_columns([{name: str(dtype) for name, dtype in zip(s.names, s.types)} for s in schemas])


def is_string_like(dtype: pa.DataType) -> bool:
    if pa.types.is_dictionary(dtype):
        return is_string_like(dtype.value_type)
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype)


def unify_types(types: list[pa.DataType]) -> tuple[pa.DataType, str | None]:
    """One type for a column that different files gave different types, and how values change.

    Deterministic, so any split of the input into files or chunks unifies the same way:
    integers widen to int64, numbers to float64, anything else becomes a string column in
    which strings stay as they are and other values are JSON-encoded (as JSONL's mixed
    metadata already is). Null-typed (all-null) columns fit any type. ``how`` is None when
    there was nothing to unify.
    """
    distinct = list(dict.fromkeys(t for t in types if not pa.types.is_null(t)))
    if not distinct:
        return pa.null(), None
    if len(distinct) == 1:
        return distinct[0], None
    if all(pa.types.is_integer(t) for t in distinct) and pa.uint64() not in distinct:
        return pa.int64(), "widened to int64"
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in distinct):
        return pa.float64(), "widened to float64"
    if all(is_string_like(t) for t in distinct):
        return pa.string(), "cast to string"
    return pa.string(), "non-string values JSON-encoded"


def json_text(value: Any) -> str | None:
    """A metadata value as text: strings as they are, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:  # nested deeper than JSON encoders go
        return str(value)


def conform_column(column: pa.Array | pa.ChunkedArray, target: pa.DataType) -> pa.Array | pa.ChunkedArray:
    """``column`` as ``target`` (a type from :func:`unify_types`); raises ArrowInvalid when it cannot be."""
    if column.type == target or pa.types.is_null(target):
        return column
    if pa.types.is_string(target) and not is_string_like(column.type) and not pa.types.is_null(column.type):
        return pa.array([json_text(value) for value in column.to_pylist()], pa.string())
    return pc.cast(column, target)


def conform_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns and types; columns it lacks are null."""
    columns = [
        conform_column(table[f.name], f.type) if f.name in table.schema.names else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


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
            dataset = cls(root, manifest.shards, manifest)
            for shard in dataset.shards:
                dataset._check_size(shard)  # cheap, on the driver: a missing or resized shard fails before any work
            return dataset
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

    def verify(self, shard: ShardInfo) -> None:
        """Raise unless the shard is the file its manifest describes: size, content checksum, rows."""
        if self.manifest is None:
            return  # nothing recorded to check against; read errors still name the file
        path = self.shard_path(shard)
        self._check_size(shard)
        if shard.checksum is not None and file_checksum(path) != shard.checksum:
            raise CorruptShardError(f"{path}: its content differs from the checksum in its manifest; {self._fix()}")
        rows = self._parquet(shard).metadata.num_rows
        if rows != shard.rows:
            raise CorruptShardError(f"{path}: {rows:,} rows, but its manifest records {shard.rows:,}; {self._fix()}")

    def read_schema(self, shard: ShardInfo) -> pa.Schema:
        """The shard's Arrow schema, from its footer; an unreadable footer is an error naming the file."""
        return self._parquet(shard).schema_arrow

    def iter_batches(
        self, shard: ShardInfo, columns: list[str] | None = None, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> Iterator[pa.Table]:
        self.verify(shard)
        parquet = self._parquet(shard)
        present = [c for c in columns if c in parquet.schema_arrow.names] if columns else None
        try:
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=present):
                yield pa.Table.from_batches([batch])
        except (pa.ArrowException, OSError) as error:
            raise self._unreadable(shard, error) from error

    def _parquet(self, shard: ShardInfo) -> pq.ParquetFile:
        try:
            return pq.ParquetFile(self.shard_path(shard))
        except (pa.ArrowException, OSError) as error:
            raise self._unreadable(shard, error) from error

    def _unreadable(self, shard: ShardInfo, error: Exception) -> CorruptShardError:
        return CorruptShardError(f"{self.shard_path(shard)}: not readable Parquet ({error}); {self._fix()}")

    def _check_size(self, shard: ShardInfo) -> None:
        path = self.shard_path(shard)
        if not path.is_file():
            raise CorruptShardError(f"{path}: listed in {self.root / MANIFEST_FILE} but missing; {self._fix()}")
        size = path.stat().st_size
        if size != shard.file_bytes:
            raise CorruptShardError(
                f"{path}: {size:,} bytes, but its manifest records {shard.file_bytes:,}; {self._fix()}"
            )

    def _fix(self) -> str:
        if self.manifest is None:
            return "restore the file or remove it from the folder"
        return f"it changed after `{self.manifest.stage}` wrote it: restore it, or re-run that stage into {self.root}"

    def iter_numbered_batches(
        self, shard: ShardInfo, columns: list[str] | None = None, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> Iterator[tuple[pa.Table, np.ndarray]]:
        """Batches of one shard with each row's position in the shard (for rejects' locations)."""
        offset = 0
        for batch in self.iter_batches(shard, columns, batch_rows):
            yield batch, np.arange(offset, offset + batch.num_rows)
            offset += batch.num_rows

    def fingerprint(self) -> str:
        """Identifies the dataset's content, so a resumed run refuses a changed input.

        A manifest's shards carry content checksums; bare Parquet files are identified by
        name, size and modification time (hashing a foreign corpus on every run would cost
        a full read).
        """
        listing = [asdict(s) for s in self.shards]
        if self.manifest is None:
            for entry, shard in zip(listing, self.shards):
                entry["mtime_ns"] = self.shard_path(shard).stat().st_mtime_ns
        return hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()[:16]

    def read_table(self, columns: list[str] | None = None) -> pa.Table:
        """The whole dataset in memory: for tests, small datasets and reports."""
        tables = [pa.concat_tables(self.iter_batches(s, columns)) for s in self.shards if s.rows]
        if not tables:
            return pa.table({name: pa.array([], pa.string()) for name in columns or REQUIRED_COLUMNS})
        return pa.concat_tables(tables, promote_options="permissive")


def _describe_parquet(root: Path, path: Path) -> ShardInfo:
    """Footer-only description; ``text_bytes`` is the text column's uncompressed Parquet size,
    an estimate (it includes offsets), since a dataset without a manifest has no exact count."""
    try:
        metadata = pq.ParquetFile(path).metadata
    except (pa.ArrowException, OSError) as error:
        raise CorruptShardError(
            f"{path}: not readable Parquet ({error}); restore the file or remove it from the folder"
        ) from error
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
        """Conform to the open shard's schema (see :func:`conform_table`), or roll over to a new shard."""
        assert self._writer is not None
        schema = self._writer.schema
        if set(table.schema.names) <= set(schema.names):
            try:
                return conform_table(table, schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        self._close_shard()
        return table

    def _open(self, schema: pa.Schema) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"{self.prefix}-{len(self.shards):05d}.parquet"
        self._tmp = temp_sibling(final)
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
        checksum = file_checksum(self._tmp)
        self._tmp.replace(final)
        name = str(final.relative_to(self.root))
        self.shards.append(ShardInfo(name, self._rows, final.stat().st_size, self._text_bytes, checksum))
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
