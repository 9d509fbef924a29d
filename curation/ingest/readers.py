"""Readers for the three input kinds, each yielding (candidates, rejects) chunks.

Candidates are tables of ``id``, ``text``, ``source``, metadata columns and
``_location``; screening for binary/blank/oversized text happens afterwards, in
one place. Everything a reader cannot turn into a candidate becomes a reject
with its location and reason; nothing raises out of a reader for bad content.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import zstandard

from corpusmill.curation.dataset import REJECT_RAW_CAP, reject_table
from corpusmill.curation.ingest.screen import LOCATION
from corpusmill.curation.options import option

STAGE = "ingest"
RESERVED = ("id", "text", "source", LOCATION)
Chunk = tuple[pa.Table | None, pa.Table | None]


# A reader yields a chunk once it holds this many records or bytes of text.
CHUNK_ROWS = 4096
CHUNK_BYTES = 32 * 2**20


@dataclass(frozen=True, kw_only=True)
class ReadOptions:
    """How readers find a document in a record; `corpusmill ingest`'s options inherit these."""

    text_field: str = option("text", help="field/column holding the document text (default: text)")
    id_field: str = option(
        "id", help="field/column holding the document id; ids are generated where it is missing (default: id)"
    )
    max_doc_bytes: int = option(64 * 2**20, help="larger documents are rejected as too_large (default: 64 MiB)")


@dataclass
class CandidateBuffer:
    """Collects records parsed one by one (JSONL lines, files) into Arrow chunks."""

    source: str
    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    locations: list[str] = field(default_factory=list)
    metas: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[tuple[str, str, str, bytes, int]] = field(default_factory=list)
    pending_bytes: int = 0

    def add(self, doc_id: str, text: str, location: str, meta: dict[str, Any]) -> None:
        self.ids.append(doc_id)
        self.texts.append(text)
        self.locations.append(location)
        self.metas.append(meta)
        self.pending_bytes += len(text)

    def reject(self, reason: str, detail: str, location: str, raw: bytes, raw_size: int | None = None) -> None:
        self.rejected.append((reason, detail, location, raw[:REJECT_RAW_CAP], len(raw) if raw_size is None else raw_size))
        self.pending_bytes += min(len(raw), REJECT_RAW_CAP)

    def __len__(self) -> int:
        return len(self.ids) + len(self.rejected)

    def take(self) -> Chunk:
        candidates = None
        if self.ids:
            columns: dict[str, pa.Array] = {
                "id": pa.array(self.ids, pa.string()),
                "text": pa.array(self.texts, pa.string()),
                "source": pa.array([self.source] * len(self.ids), pa.string()),
                LOCATION: pa.array(self.locations, pa.string()),
            }
            columns.update(metadata_columns(self.metas))
            candidates = pa.table(columns)
        rejects = None
        if self.rejected:
            reasons, details, locations, raws, sizes = (list(col) for col in zip(*self.rejected))
            rejects = reject_table(STAGE, reasons, details, locations, [self.source] * len(raws), [None] * len(raws), raws, sizes)
        self.ids, self.texts, self.locations, self.metas, self.rejected = [], [], [], [], []
        self.pending_bytes = 0
        return candidates, rejects


def metadata_columns(metas: list[dict[str, Any]]) -> dict[str, pa.Array]:
    """Columns for metadata fields: scalars keep their type; nested or mixed values become JSON text."""
    names: dict[str, None] = {}
    for meta in metas:
        names.update(dict.fromkeys(meta))
    columns = {}
    for name in names:
        values = [meta.get(name) for meta in metas]
        column_name = f"orig_{name}" if name in RESERVED else name
        columns[column_name] = _metadata_array(values)
    return columns


def _metadata_array(values: list[Any]) -> pa.Array:
    if not any(isinstance(v, (dict, list)) for v in values):
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, UnicodeEncodeError):
            pass
    return pa.array([None if v is None else v if isinstance(v, str) else orjson.dumps(v).decode() for v in values], pa.string())


def open_compressed(path: Path) -> IO[bytes]:
    """A buffered binary stream over a plain, gzip or zstd file, chosen by suffix."""
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    if path.suffix == ".zst":
        raw = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), read_across_frames=True, closefd=True)
        return io.BufferedReader(raw, buffer_size=2**20)
    return open(path, "rb", buffering=2**20)


def _flush_when_full(buffer: CandidateBuffer) -> Iterator[Chunk]:
    if len(buffer) >= CHUNK_ROWS or buffer.pending_bytes >= CHUNK_BYTES:
        yield buffer.take()


def read_jsonl(path: Path, rel: str, source: str, options: ReadOptions) -> Iterator[Chunk]:
    buffer = CandidateBuffer(source)
    line_no = 0
    try:
        with open_compressed(path) as stream:
            for line_no, line in enumerate(stream, start=1):
                parse_json_record(line.rstrip(b"\r\n"), f"{rel}:{line_no}", f"{source}:{rel}:{line_no}", buffer, options)
                yield from _flush_when_full(buffer)
    except (OSError, EOFError, zstandard.ZstdError) as error:
        buffer.reject("unreadable_input", f"stopped reading after line {line_no}: {error}", f"{rel}:{line_no + 1}", b"")
    yield buffer.take()


def parse_json_record(line: bytes, location: str, default_id: str, buffer: CandidateBuffer, options: ReadOptions) -> None:
    """Turn one JSONL line into a candidate or a reject; blank lines are not records."""
    if not line.strip():
        return
    if len(line) > options.max_doc_bytes:
        buffer.reject("too_large", f"line is {len(line):,} bytes", location, line)
        return
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        reason = "invalid_utf8" if "UTF-8" in str(error) or "surrogate" in str(error) else "malformed_json"
        buffer.reject(reason, str(error), location, line)
        return
    if not isinstance(record, dict):
        buffer.reject("malformed_json", f"a JSON {type(record).__name__}, not an object", location, line)
        return
    text = record.pop(options.text_field, None)
    if text is None:
        buffer.reject("missing_text", f"no {options.text_field!r} field", location, line)
        return
    if not isinstance(text, str):
        buffer.reject("non_string_text", f"{options.text_field!r} is a JSON {type(text).__name__}", location, line)
        return
    doc_id = record.pop(options.id_field, None)
    if doc_id is None:
        doc_id = default_id
    elif isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    elif not isinstance(doc_id, str) or not doc_id:
        buffer.reject("invalid_id", f"{options.id_field!r} must be a non-empty string or integer", location, line)
        return
    buffer.add(doc_id, text, location, record)


def read_files(root: Path, rels: list[str], source: str, options: ReadOptions) -> Iterator[Chunk]:
    """One document per file, with its relative ``path`` as metadata."""
    buffer = CandidateBuffer(source)
    for rel in rels:
        read_one_file(root / rel, rel, source, buffer, options)
        yield from _flush_when_full(buffer)
    yield buffer.take()


def read_one_file(path: Path, rel: str, source: str, buffer: CandidateBuffer, options: ReadOptions) -> None:
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            if size > options.max_doc_bytes:
                buffer.reject("too_large", f"file is {size:,} bytes", rel, handle.read(REJECT_RAW_CAP), size)
                return
            data = handle.read()
    except OSError as error:
        buffer.reject("unreadable_input", str(error), rel, b"")
        return
    if b"\x00" in data:
        buffer.reject("binary", "file contains NUL bytes", rel, data)
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        buffer.reject("invalid_utf8", str(error), rel, data)
        return
    buffer.add(f"{source}:{rel}", text, rel, {"path": rel})


def read_parquet(path: Path, rel: str, source: str, options: ReadOptions) -> Iterator[Chunk]:
    """Arrow-native: metadata columns pass through with their types, no per-row Python."""
    try:
        parquet = pq.ParquetFile(path)
        row = 0
        for batch in parquet.iter_batches(batch_size=CHUNK_ROWS):
            table = pa.Table.from_batches([batch])
            yield parquet_candidates(table, rel, source, row, options)
            row += table.num_rows
    except (OSError, pa.ArrowException) as error:
        rejects = reject_table(STAGE, ["unreadable_input"], [str(error)], [rel], [source], [None], [b""])
        yield None, rejects


def parquet_candidates(table: pa.Table, rel: str, source: str, first_row: int, options: ReadOptions) -> Chunk:
    rows = pa.array(range(first_row, first_row + table.num_rows), pa.int64()).cast(pa.string())
    locations = pc.binary_join_element_wise(f"{rel}:", rows, "")
    default_ids = pc.binary_join_element_wise(f"{source}:{rel}:", rows, "")
    text_field, id_field = options.text_field, options.id_field
    if text_field not in table.schema.names:
        return None, _reject_rows(table, locations, source, "missing_text", f"no column {text_field!r}")
    text, bad_utf8 = _text_column(table[text_field])
    if text is None:
        return None, _reject_rows(table, locations, source, "non_string_text", f"column {text_field!r} is {table.schema.field(text_field).type}")
    ids = default_ids
    if id_field in table.schema.names:
        ids = pc.coalesce(pc.cast(table[id_field], pa.string()), default_ids)
    metadata = table.drop_columns([c for c in (text_field, id_field) if c in table.schema.names])
    columns = {"id": ids, "text": text, "source": pa.array([source] * table.num_rows, pa.string()), LOCATION: locations}
    for name in metadata.schema.names:
        columns[f"orig_{name}" if name in RESERVED else name] = metadata[name]
    candidates = pa.table(columns)
    problems = pc.if_else(pc.is_null(text), "missing_text", pa.nulls(table.num_rows, pa.string()))
    if bad_utf8 is not None:
        problems = pc.if_else(bad_utf8, "invalid_utf8", problems)
    bad = pc.is_valid(problems)
    rejects = _reject_rows(table.filter(bad), locations.filter(bad), source, problems.filter(bad), f"{text_field!r} is null or not UTF-8")
    return candidates.filter(pc.invert(bad)), rejects


def _text_column(column: pa.ChunkedArray) -> tuple[pa.ChunkedArray | None, pa.Array | None]:
    """The column as UTF-8 strings plus a mask of rows that were not valid UTF-8."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return pc.cast(column, pa.string()), None
    if not (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
        return None, None
    try:
        return pc.cast(column, pa.string()), None
    except pa.ArrowInvalid:
        decoded = [_try_decode(value) for value in column.to_pylist()]
        bad = pa.array([value is not None and text is None for value, text in zip(column.to_pylist(), decoded)])
        return pa.chunked_array([pa.array(decoded, pa.string())]), bad


def _try_decode(value: bytes | None) -> str | None:
    try:
        return None if value is None else value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _reject_rows(table: pa.Table, locations: pa.Array, source: str, reasons: pa.Array | str, detail: str) -> pa.Table:
    reason_list = [reasons] * table.num_rows if isinstance(reasons, str) else reasons.to_pylist()
    raws = [orjson.dumps(row, default=str) for row in table.to_pylist()]
    return reject_table(STAGE, reason_list, [detail] * table.num_rows, locations.to_pylist(), [source] * table.num_rows, [None] * table.num_rows, raws)
