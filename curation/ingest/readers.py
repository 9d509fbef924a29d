"""Readers for the three input kinds, each yielding (candidates, rejects) chunks.

Candidates are tables of ``id``, ``text``, ``source``, metadata columns and
``_location``; screening for binary/blank/oversized text happens afterwards, in
one place. Everything a reader cannot turn into a candidate becomes a reject
with its location and reason; nothing raises out of a reader for bad content.
Compressed input is decoded here, frame by frame, so a damaged or cut-off stream
becomes an ``unreadable_input`` reject that says which bytes could not be decoded,
never a silent stop. Every raw file read is recorded (size, mtime, content checksum)
in the ``inputs`` list the caller passes, so a re-run can tell whether it changed.
"""

from __future__ import annotations

import codecs
import functools
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import zstandard
from corpusmill.curation.checksums import Checksum, file_checksum
from corpusmill.curation.dataset import REJECT_RAW_CAP, reject_table
from corpusmill.curation.ingest.discover import InputError
from corpusmill.curation.ingest.screen import LOCATION
from corpusmill.curation.options import option

STAGE = "ingest"
RESERVED = ("id", "text", "source", LOCATION)
Chunk = tuple[pa.Table | None, pa.Table | None]
BOM = codecs.BOM_UTF8

# A reader yields a chunk once it holds this many records or bytes of text.
CHUNK_ROWS = 4096
CHUNK_BYTES = 32 * 2**20
# Compressed bytes fed to a decoder at a time: bounds the decoded output held at once.
DECODE_BLOCK = 256 * 2**10


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
        self.rejected.append(
            (reason, detail, location, raw[:REJECT_RAW_CAP], len(raw) if raw_size is None else raw_size)
        )
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
            rejects = reject_table(
                STAGE, reasons, details, locations, [self.source] * len(raws), [None] * len(raws), raws, sizes
            )
        self.ids, self.texts, self.locations, self.metas, self.rejected = [], [], [], [], []
        self.pending_bytes = 0
        return candidates, rejects


def renamed_fields(names: list[str]) -> dict[str, str]:
    """Metadata field -> its column: names the document uses itself (``source``, ...) get an
    ``orig_`` prefix, repeated until it names no other field, so ``source`` and ``orig_source``
    of one record both survive (as ``orig_orig_source`` and ``orig_source``)."""
    taken = set(names)
    columns = {}
    for name in names:
        column = name
        if name in RESERVED:
            column = f"orig_{name}"
            while column in taken:
                column = f"orig_{column}"
            taken.add(column)
        columns[name] = column
    return columns


@functools.lru_cache(maxsize=1024)
def _renamed_fields_of(names: tuple[str, ...]) -> dict[str, str]:
    """``renamed_fields`` per distinct field list: records of one file nearly always share theirs.
    Callers only read the mapping."""
    return renamed_fields(list(names))


def metadata_columns(metas: list[dict[str, Any]]) -> dict[str, pa.Array]:
    """Columns for metadata fields: scalars keep their type; nested or mixed values become JSON text."""
    names: dict[str, None] = {}
    for meta in metas:
        names.update(dict.fromkeys(meta))
    return {name: _metadata_array([meta.get(name) for meta in metas]) for name in names}


def _metadata_array(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, UnicodeEncodeError):
        return pa.array(
            [None if v is None else v if isinstance(v, str) else orjson.dumps(v).decode() for v in values], pa.string()
        )


def _record_metadata(record: dict[str, Any]) -> dict[str, Any] | None:
    """A record's remaining fields as metadata: reserved names renamed, nested values as JSON
    text (encoded here, per record, so one record nested too deep for JSON encoders is that
    record's reject rather than its chunk's crash); None when it is nested too deep."""
    if any(name in RESERVED for name in record):
        columns = _renamed_fields_of(tuple(record))
        record = {columns[name]: value for name, value in record.items()}
    for name, value in record.items():
        if isinstance(value, (dict, list)):
            try:
                record[name] = orjson.dumps(value).decode()
            except TypeError:
                return None
    return record


# --- raw files: recorded, checksummed, decoded --------------------------------------------


class DecodeFailure(Exception):
    """Compressed input that stops decoding: where, and how many bytes were left undecoded."""

    def __init__(self, codec: str, problem: str, decoded_to: int, size: int):
        super().__init__(problem)
        self.codec, self.problem, self.decoded_to, self.size = codec, problem, decoded_to, size

    @property
    def undecoded(self) -> int:
        return self.size - self.decoded_to

    def describe(self) -> str:
        if not self.undecoded:
            return f"{self.codec} data cannot be decoded ({self.problem}); every compressed byte present was decoded"
        return (
            f"{self.codec} data cannot be decoded ({self.problem}): compressed bytes {self.decoded_to:,}-{self.size:,} "
            f"of {self.size:,} ({self.undecoded:,} bytes) were not decoded"
        )


class RecordedInput:
    """A raw input file opened for reading; on close its size, mtime and the checksum of all
    its bytes (the rest is read if decoding stopped early) are appended to ``inputs``."""

    def __init__(self, path: Path, inputs: list[dict[str, Any]]):
        self.path, self.inputs = path, inputs
        self.checksum = Checksum()

    def __enter__(self) -> Self:
        self.handle = open(self.path, "rb")
        status = os.fstat(self.handle.fileno())
        self.size, self.mtime_ns = status.st_size, status.st_mtime_ns
        return self

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.checksum.update(data)
        return data

    def __exit__(self, *exc_info: object) -> None:
        with self.handle:
            if exc_info[0] is not None and not isinstance(exc_info[1], DecodeFailure):
                return  # a read error (or an abandoned read): the file is not fully known, so nothing is recorded
            while self.read(DECODE_BLOCK):
                pass
        self.inputs.append(
            {"path": str(self.path), "size": self.size, "mtime_ns": self.mtime_ns, "checksum": self.checksum.value()}
        )


def record_input(path: Path, inputs: list[dict[str, Any]]) -> None:
    """Record a file another library reads (Parquet), checksummed in a pass of its own."""
    status = path.stat()
    inputs.append(
        {"path": str(path), "size": status.st_size, "mtime_ns": status.st_mtime_ns, "checksum": file_checksum(path)}
    )


def _codec(path: Path) -> str | None:
    return {".gz": "gzip", ".zst": "zstd"}.get(path.suffix)


def _decoder(codec: str) -> Any:
    if codec == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    return zstandard.ZstdDecompressor().decompressobj()


def decoded_blocks(raw: RecordedInput, codec: str | None) -> Iterator[bytes]:
    """The decoded bytes of a plain, gzip or zstd file, across members/frames.

    Raises :class:`DecodeFailure` after yielding everything that decoded, when the data is
    damaged, is followed by something that is not another frame, or ends inside a frame.
    gzip may be padded with NUL bytes after its last member (a documented convention).
    """
    if codec is None:
        while block := raw.read(DECODE_BLOCK):
            yield block
        return
    decoder, fed, position, decoded_to, frame_start = _decoder(codec), False, 0, 0, 0
    while block := raw.read(DECODE_BLOCK):
        data = block
        while data:
            if not fed and codec == "gzip":
                padding = len(data) - len(data.lstrip(b"\0"))
                data, position = data[padding:], position + padding
                decoded_to = frame_start = position
                if not data:
                    break
            try:
                out = decoder.decompress(data)
            except (zlib.error, zstandard.ZstdError) as error:
                raise DecodeFailure(codec, str(error), decoded_to, raw.size) from error
            fed = True
            if out:
                yield out
            if not decoder.eof:
                position += len(data)
                decoded_to = position if out else decoded_to
                break
            rest = decoder.unused_data
            position += len(data) - len(rest)
            decoded_to = frame_start = position
            data, decoder, fed = rest, _decoder(codec), False
    if fed:
        if tail := decoder.flush():
            yield tail
        if codec == "zstd":  # a zstd decoder holds back a cut block: find where the complete ones end
            decoded_to = zstd_complete_blocks_end(raw.path, frame_start, raw.size)
        else:  # inflate streams out everything it received; only the member's end is missing
            decoded_to = raw.size
        raise DecodeFailure(codec, "the file ends inside a compressed frame", decoded_to, raw.size)


def zstd_complete_blocks_end(path: Path, frame_start: int, size: int) -> int:
    """Where the last complete block of the zstd frame at ``frame_start`` ends (RFC 8878, 3.1.1):
    the bytes after it belong to a block the file cuts off, which no decoder can decode."""
    with open(path, "rb") as handle:
        handle.seek(frame_start)
        try:
            position = frame_start + zstandard.frame_header_size(handle.read(18))
        except zstandard.ZstdError:
            return frame_start
        while True:
            handle.seek(position)
            header = handle.read(3)
            if len(header) < 3:
                return position
            value = int.from_bytes(header, "little")
            block_type, block_size = (value >> 1) & 3, value >> 3
            end = position + 3 + (1 if block_type == 1 else block_size)  # an RLE block stores one byte
            if end > size:
                return position
            position = end
            if value & 1:  # the last block; only the optional 4-byte checksum follows
                return position


class Lines:
    """Splits decoded blocks into lines; ``tail`` keeps the unfinished last line, so a reader that
    stops on a decoding error can show the record it cut."""

    def __init__(self) -> None:
        self._pieces: list[bytes] = []

    @property
    def tail(self) -> bytes:
        return b"".join(self._pieces)

    def split(self, blocks: Iterator[bytes]) -> Iterator[bytes]:
        for block in blocks:
            lines = block.split(b"\n")
            if len(lines) == 1:
                self._pieces.append(block)
                continue
            if self._pieces:
                lines[0] = b"".join([*self._pieces, lines[0]])
            last = lines.pop()
            self._pieces = [last] if last else []
            yield from lines
        if self._pieces:
            line, self._pieces = self.tail, []
            yield line


# --- JSONL ------------------------------------------------------------------------------------


def _flush_when_full(buffer: CandidateBuffer) -> Iterator[Chunk]:
    if len(buffer) >= CHUNK_ROWS or buffer.pending_bytes >= CHUNK_BYTES:
        yield buffer.take()


def read_jsonl(
    path: Path, rel: str, source: str, options: ReadOptions, inputs: list[dict[str, Any]]
) -> Iterator[Chunk]:
    buffer = CandidateBuffer(source)
    lines = Lines()
    line_no = 0
    try:
        with RecordedInput(path, inputs) as raw:
            for line_no, line in enumerate(lines.split(decoded_blocks(raw, _codec(path))), start=1):
                if line_no == 1 and line.startswith(BOM):
                    line = line[len(BOM) :]
                parse_json_record(
                    line.rstrip(b"\r\n"), f"{rel}:{line_no}", f"{source}:{rel}:{line_no}", buffer, options
                )
                yield from _flush_when_full(buffer)
    except DecodeFailure as failure:
        tail = lines.tail
        detail = f"{failure.describe()}; line {line_no + 1} was cut after {len(tail):,} decoded bytes"
        buffer.reject("unreadable_input", detail, f"{rel}:{line_no + 1}", tail, len(tail) + failure.undecoded)
    except OSError as error:
        buffer.reject(
            "unreadable_input", f"stopped reading after line {line_no}: {error}", f"{rel}:{line_no + 1}", lines.tail
        )
    yield buffer.take()


def parse_json_record(
    line: bytes, location: str, default_id: str, buffer: CandidateBuffer, options: ReadOptions
) -> None:
    """Turn one JSONL line into a candidate or a reject; blank lines are not records."""
    if not line.strip():
        return
    if len(line) > options.max_doc_bytes:
        buffer.reject("too_large", f"line is {len(line):,} bytes", location, line)
        return
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        message = str(error)
        reason = "invalid_utf8" if "UTF-8" in message or "surrogate" in message else "malformed_json"
        reason = "too_deep" if "depth limit" in message or "recursion" in message.lower() else reason
        buffer.reject(reason, message, location, line)
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
    meta = _record_metadata(record)
    if meta is None:
        buffer.reject("too_deep", "metadata nested deeper than JSON encoders allow (255 levels)", location, line)
        return
    buffer.add(doc_id, text, location, meta)


# --- file trees -------------------------------------------------------------------------------


def read_files(
    root: Path, rels: list[str], source: str, options: ReadOptions, inputs: list[dict[str, Any]], prefix: str = ""
) -> Iterator[Chunk]:
    """One document per file, with its relative ``path`` as metadata; ``prefix`` (set when two
    trees share a source) goes in front of the path in ids and locations."""
    buffer = CandidateBuffer(source)
    for rel in rels:
        read_one_file(root / rel, rel, prefix, buffer, options, inputs)
        yield from _flush_when_full(buffer)
    yield buffer.take()


def read_one_file(
    path: Path, rel: str, prefix: str, buffer: CandidateBuffer, options: ReadOptions, inputs: list[dict[str, Any]]
) -> None:
    label = f"{prefix}{rel}"
    try:
        with RecordedInput(path, inputs) as raw:
            if raw.size > options.max_doc_bytes:
                buffer.reject("too_large", f"file is {raw.size:,} bytes", label, raw.read(REJECT_RAW_CAP), raw.size)
                return
            data = raw.read()
    except OSError as error:
        buffer.reject("unreadable_input", str(error), label, b"")
        return
    if b"\x00" in data:
        buffer.reject("binary", "file contains NUL bytes", label, data)
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        buffer.reject("invalid_utf8", str(error), label, data)
        return
    buffer.add(f"{buffer.source}:{label}", text, label, {"path": rel})


# --- Parquet ----------------------------------------------------------------------------------


def check_parquet_columns(names: list[str], path: Path) -> None:
    """A column name given twice makes every row ambiguous: a problem of the file, named in one line."""
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputError(
            f"{path}: column(s) {repeated} appear more than once, so which one to read is ambiguous; "
            "rewrite the file with distinct column names"
        )


def read_parquet(
    path: Path, rel: str, source: str, options: ReadOptions, inputs: list[dict[str, Any]]
) -> Iterator[Chunk]:
    """Arrow-native: metadata columns pass through with their types, no per-row Python."""
    record_input(path, inputs)
    row = 0
    try:
        parquet = pq.ParquetFile(path)
        check_parquet_columns(parquet.schema_arrow.names, path)
        for batch in parquet.iter_batches(batch_size=CHUNK_ROWS):
            table = pa.Table.from_batches([batch])
            yield parquet_candidates(table, rel, source, row, options)
            row += table.num_rows
    except (OSError, pa.ArrowException) as error:
        detail = f"stopped reading after row {row:,}: {error}"
        yield None, reject_table(STAGE, ["unreadable_input"], [detail], [f"{rel}:{row}"], [source], [None], [b""])


def parquet_candidates(table: pa.Table, rel: str, source: str, first_row: int, options: ReadOptions) -> Chunk:
    """Candidates and per-row rejects of one batch: a bad value costs its row, never the file."""
    rows = pa.array(range(first_row, first_row + table.num_rows), pa.int64()).cast(pa.string())
    locations = pc.binary_join_element_wise(f"{rel}:", rows, "")
    default_ids = pc.binary_join_element_wise(f"{source}:{rel}:", rows, "")
    text_field, id_field = options.text_field, options.id_field
    if text_field not in table.schema.names:
        return None, _reject_rows(
            table,
            locations,
            source,
            pa.repeat("missing_text", table.num_rows),
            {"missing_text": f"no column {text_field!r}"},
        )
    text, bad_utf8 = _utf8_column(table[text_field])
    if text is None:
        detail = f"column {text_field!r} is {table.schema.field(text_field).type}"
        return None, _reject_rows(
            table, locations, source, pa.repeat("non_string_text", table.num_rows), {"non_string_text": detail}
        )
    ids, bad_ids = _id_column(table, id_field, default_ids)
    metadata = table.drop_columns([c for c in (text_field, id_field) if c in table.schema.names])
    names = renamed_fields(metadata.schema.names)
    columns = {"id": ids, "text": text, "source": pa.array([source] * table.num_rows, pa.string()), LOCATION: locations}
    for name in metadata.schema.names:
        columns[names[name]] = metadata[name]
    candidates = pa.table(columns)
    problems = pc.if_else(pc.is_null(text), "missing_text", pa.nulls(table.num_rows, pa.string()))
    if bad_utf8 is not None:
        problems = pc.if_else(bad_utf8, "invalid_utf8", problems)
    if bad_ids is not None:
        problems = pc.if_else(pc.and_(bad_ids, pc.is_null(problems)), "invalid_id", problems)
    bad = pc.is_valid(problems)
    details = {"missing_text": f"{text_field!r} is null", "invalid_utf8": f"{text_field!r} is not UTF-8"}
    if id_field in table.schema.names:
        id_type = table.schema.field(id_field).type
        details["invalid_id"] = f"{id_field!r} must be a non-empty string or integer (UTF-8); its column is {id_type}"
    rejects = _reject_rows(table.filter(bad), locations.filter(bad), source, problems.filter(bad), details)
    return candidates.filter(pc.invert(bad)), rejects


def _utf8_column(column: pa.ChunkedArray) -> tuple[pa.ChunkedArray | None, pa.Array | None]:
    """A string, dictionary-encoded string or binary column as UTF-8 strings, plus a mask of
    rows that were not valid UTF-8; (None, None) for any other type."""
    if pa.types.is_dictionary(column.type):
        return _utf8_column(column.cast(column.type.value_type))
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return pc.cast(column, pa.string()), None
    if not (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
        return None, None
    try:
        return pc.cast(column, pa.string()), None
    except pa.ArrowInvalid:
        values = column.to_pylist()
        decoded = [_try_decode(value) for value in values]
        bad = pa.array([value is not None and text is None for value, text in zip(values, decoded)])
        return pa.chunked_array([pa.array(decoded, pa.string())]), bad


def _id_column(
    table: pa.Table, id_field: str, default_ids: pa.Array
) -> tuple[pa.ChunkedArray | pa.Array, pa.Array | None]:
    """Ids as strings (integers as their digits, nulls generated), and a mask of rows whose id
    is unusable: empty, not UTF-8, or of a type that is neither string nor integer."""
    if id_field not in table.schema.names:
        return default_ids, None
    column = table[id_field]
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_integer(column.type):
        as_text, bad = pc.cast(column, pa.string()), None
    else:
        as_text, bad = _utf8_column(column)
        if as_text is None:
            return default_ids, pc.is_valid(column).combine_chunks()
    empty = pc.fill_null(pc.equal(pc.binary_length(as_text), 0), False)
    bad = empty if bad is None else pc.or_(bad, empty)
    return pc.coalesce(as_text, default_ids), _as_array(bad)


def _as_array(mask: pa.Array | pa.ChunkedArray) -> pa.Array:
    return mask.combine_chunks() if isinstance(mask, pa.ChunkedArray) else mask


def _try_decode(value: bytes | None) -> str | None:
    try:
        return None if value is None else value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _raw_record(row: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(row, default=str)
    except TypeError:  # nested too deep for the encoder
        return repr(row).encode("utf-8", "backslashreplace")


def _reject_rows(
    table: pa.Table, locations: pa.Array, source: str, reasons: pa.Array, details: dict[str, str]
) -> pa.Table:
    """Rejects for whole rows, each with its reason's detail and the row itself as JSON."""
    raws = [_raw_record(row) for row in table.to_pylist()]
    reason_list = reasons.to_pylist()
    rows = table.num_rows
    return reject_table(
        STAGE,
        reason_list,
        [details[r] for r in reason_list],
        locations.to_pylist(),
        [source] * rows,
        [None] * rows,
        raws,
    )
