"""Benchmark corpora of any size, resampled from the real text on this machine.

Why: a stage's speed and memory only mean something on realistic documents (real
vocabulary and length spread; code, prose, man pages and ten-odd languages side by
side) at a size that does not fit a toy, and a dedup benchmark needs a ground truth.

A document is one to three windows of a real token stream (words keep their trailing
whitespace, so layout survives) with word-level mutations: drops, swaps of neighbours
and substitutions drawn from the same stream, at a per-document rate. Every generated
text is distinct (checked with BLAKE2b); then a share of them is planted again as exact
copies with their own random ids in random shards. ``planted_duplicates.parquet`` lists
each copy an exact dedup must remove as (``id``, ``kept_id``), ``kept_id`` being the
smallest id of its copy group. The output is a corpusmill dataset (``shards/*.parquet``
+ ``manifest.json``), deterministic for a seed on a given machine.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import struct
import sysconfig
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpusmill.curation.dataset import SHARDS_DIR, Manifest, ShardInfo, describe_columns, text_bytes, write_manifest
from corpusmill.curation.dedup.exact import utf8_views
from corpusmill.pipelines.demo_corpus import read_mo_translations

GENERATOR_VERSION = 1  # bump when a change alters the documents generated for a spec
GENERATOR_FILE = "generator.json"
PLANTED_FILE = "planted_duplicates.parquet"
STAGE = "benchmark_corpus"

POOL_BYTES_PER_SOURCE = 24_000_000
MAX_FILE_BYTES = 2_000_000
BATCH_DOCS = 2048
MAX_WINDOWS_PER_DOC = 3
MEDIAN_WINDOW_TOKENS = 100
WINDOW_TOKENS_SIGMA = 1.0
MIN_WINDOW_TOKENS = 8
MAX_WINDOW_TOKENS = 20_000
MAX_COPIES = 4
ROW_GROUP_ROWS = 8192
ID_SPACE_BITS = 40  # ids are "doc-" + 10 hex digits: string order == numeric order

_IS_ASCII_SPACE = np.zeros(256, dtype=bool)
_IS_ASCII_SPACE[[9, 10, 11, 12, 13, 32]] = True
_ROFF_COMMENT = re.compile(r'^\.\s*\\"')
_ROFF_TEXT_MACRO = re.compile(r"^\.(?:B|I|BR|BI|IB|IR|RB|RI|SH|SS|SM|SB)\s+")
_ROFF_ESCAPE = re.compile(r"\\f(?:\[[^\]]*\]|\(..|.)|\\\(..|\\[&|^c]|\\s[-+]?\d")


@dataclass(frozen=True)
class CorpusSpec:
    """What to generate; two equal specs on one machine give identical corpora."""

    text_bytes: int
    seed: int = 0
    num_shards: int = 12
    duplicate_share: float = 0.18  # share of text bytes in planted copies that dedup must remove
    max_mutation_rate: float = 0.08  # per document, drawn uniformly in [0, max]

    @property
    def dirname(self) -> str:
        """Names every setting, so a cached corpus is only reused for an equal spec."""
        return (
            f"corpus-v{GENERATOR_VERSION}-{self.text_bytes / 1e9:g}gb-seed{self.seed}-s{self.num_shards}"
            f"-dup{self.duplicate_share:g}-mut{self.max_mutation_rate:g}"
        )


@dataclass(frozen=True)
class GeneratedCorpus:
    """A generated dataset and the ground truth an exact dedup must reproduce."""

    root: Path
    spec: CorpusSpec
    docs: int
    text_bytes: int
    planted_duplicates: int  # documents an exact dedup must remove
    duplicate_groups: int
    docs_per_source: dict[str, int]

    @property
    def shard_paths(self) -> list[Path]:
        return sorted((self.root / SHARDS_DIR).glob("*.parquet"))

    def read_planted_duplicates(self) -> pa.Table:
        return pq.read_table(self.root / PLANTED_FILE)


@dataclass(frozen=True)
class _TextSource:
    name: str
    files: Callable[[], list[Path]]
    read: Callable[[Path], str | None]


@dataclass(frozen=True)
class _TokenPool:
    """One source's text as a stream of token ids into its vocabulary."""

    name: str
    vocabulary: pa.LargeStringArray
    stream: np.ndarray


def build_corpus(spec: CorpusSpec, work_dir: Path) -> GeneratedCorpus:
    """The corpus for ``spec`` under ``work_dir``, generated on first use and reused after."""
    root = work_dir / spec.dirname
    if (root / GENERATOR_FILE).exists():
        return _load(root)
    staging = root.with_name(root.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    rng = np.random.default_rng(spec.seed)
    documents = _DocumentStream(harvest_pools(rng), rng, spec.max_mutation_rate)
    copies, planted = _planted_copies(documents, spec, rng)
    ids = _IdMaker(rng)
    copies = copies.append_column("id", pa.array(ids.next(copies.num_rows)))
    shards, docs_per_source = _write_shards(staging, spec, documents, copies, ids, rng)
    truth = _duplicate_truth(copies, planted)
    pq.write_table(truth, staging / PLANTED_FILE)
    write_manifest(staging, Manifest(STAGE, asdict(spec), shards, describe_columns([copies.schema])))
    corpus = GeneratedCorpus(
        root=root,
        spec=spec,
        docs=sum(s.rows for s in shards),
        text_bytes=sum(s.text_bytes for s in shards),
        planted_duplicates=truth.num_rows,
        duplicate_groups=len(planted),
        docs_per_source=dict(sorted(docs_per_source.items())),
    )
    (staging / GENERATOR_FILE).write_text(json.dumps({**asdict(corpus), "root": None}, indent=2) + "\n")
    shutil.rmtree(root, ignore_errors=True)
    staging.rename(root)
    return corpus


def _load(root: Path) -> GeneratedCorpus:
    fields = json.loads((root / GENERATOR_FILE).read_text())
    return GeneratedCorpus(**{**fields, "root": root, "spec": CorpusSpec(**fields["spec"])})


def _write_shards(
    root: Path, spec: CorpusSpec, documents: _DocumentStream, copies: pa.Table, ids: _IdMaker, rng: np.random.Generator
) -> tuple[list[ShardInfo], dict[str, int]]:
    """Each shard: fresh documents plus the planted copies that fell to it, shuffled; and docs per source."""
    shards: list[ShardInfo] = []
    docs_per_source: dict[str, int] = {}
    shard_of_copy = rng.integers(0, spec.num_shards, copies.num_rows)
    for shard in range(spec.num_shards):
        incoming = copies.filter(pa.array(shard_of_copy == shard)).drop_columns(["group"])
        own = documents.take_bytes(spec.text_bytes // spec.num_shards - text_bytes(incoming))
        own = own.append_column("id", pa.array(ids.next(own.num_rows)))
        table = pa.concat_tables([own, incoming]).select(["id", "text", "source"])
        table = table.take(pa.array(rng.permutation(table.num_rows)))
        shards.append(_write_shard(root, shard, table))
        for source, count in zip(*np.unique(table["source"].to_numpy(zero_copy_only=False), return_counts=True)):
            docs_per_source[str(source)] = docs_per_source.get(str(source), 0) + int(count)
    return shards, docs_per_source


def _write_shard(root: Path, index: int, table: pa.Table) -> ShardInfo:
    name = f"{SHARDS_DIR}/part-{index:05d}.parquet"
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", row_group_size=ROW_GROUP_ROWS)
    return ShardInfo(name, table.num_rows, path.stat().st_size, text_bytes(table))


def _planted_copies(
    documents: _DocumentStream, spec: CorpusSpec, rng: np.random.Generator
) -> tuple[pa.Table, list[int]]:
    """Originals repeated 2..MAX_COPIES times until the surplus copies hold the duplicate share of bytes.

    Returns the copy rows (text, source, group) and each group's copy count.
    """
    target = spec.duplicate_share * spec.text_bytes
    originals, copy_counts, surplus_bytes = [], [], 0
    while surplus_bytes < target:
        batch = documents.next_batch()
        counts = rng.integers(2, MAX_COPIES + 1, batch.num_rows)
        surplus = np.cumsum((counts - 1) * pc.binary_length(batch["text"]).to_numpy())
        take = min(batch.num_rows, int(np.searchsorted(surplus, target - surplus_bytes)) + 1)
        originals.append(batch.slice(0, take))
        copy_counts.extend(counts[:take].tolist())
        surplus_bytes += int(surplus[take - 1])
    groups = np.repeat(np.arange(len(copy_counts)), copy_counts)
    copies = pa.concat_tables(originals).take(pa.array(groups)).append_column("group", pa.array(groups))
    return copies, copy_counts


def _duplicate_truth(copies: pa.Table, copy_counts: list[int]) -> pa.Table:
    """(id, kept_id) for every copy but the smallest-id one of its group (copies are grouped contiguously)."""
    ids = copies["id"].to_numpy(zero_copy_only=False).astype(str)
    group_starts = np.concatenate([[0], np.cumsum(copy_counts)[:-1]])
    order = np.lexsort((ids, copies["group"].to_numpy()))
    sorted_ids = ids[order]
    kept_ids = np.repeat(sorted_ids[group_starts], copy_counts)
    removed = sorted_ids != kept_ids
    return pa.table({"id": sorted_ids[removed], "kept_id": kept_ids[removed]})


class _IdMaker:
    """Unique ids in an order unrelated to generation order (an odd-multiplier bijection mod 2**40)."""

    def __init__(self, rng: np.random.Generator):
        self.multiplier = int(rng.integers(1, 2 ** (ID_SPACE_BITS - 1))) * 2 + 1
        self.offset = int(rng.integers(0, 2**ID_SPACE_BITS))
        self.issued = 0

    def next(self, count: int) -> list[str]:
        mask = 2**ID_SPACE_BITS - 1
        first, self.issued = self.issued, self.issued + count
        return [f"doc-{(self.multiplier * n + self.offset) & mask:010x}" for n in range(first, first + count)]


class _DocumentStream:
    """Batches of generated documents whose texts are distinct from every text generated before."""

    def __init__(self, pools: list[_TokenPool], rng: np.random.Generator, max_mutation_rate: float):
        self.pools = pools
        self.max_mutation_rate = max_mutation_rate
        sizes = np.array([len(pool.stream) for pool in pools], dtype=float)
        self.pool_weights = sizes / sizes.sum()
        self.rng = rng
        self.seen: set[bytes] = set()

    def next_batch(self) -> pa.Table:
        per_pool = self.rng.multinomial(BATCH_DOCS, self.pool_weights)
        pools = [(pool, count) for pool, count in zip(self.pools, per_pool) if count]
        texts = pa.concat_arrays(
            [synthesize_documents(pool, int(count), self.rng, self.max_mutation_rate) for pool, count in pools]
        )
        sources = pa.array(np.repeat([pool.name for pool, _ in pools], [count for _, count in pools]))
        fresh = np.ones(len(texts), dtype=bool)
        for row, view in enumerate(utf8_views(texts)):
            digest = hashlib.blake2b(view, digest_size=16).digest()
            fresh[row] = digest not in self.seen
            self.seen.add(digest)
        return pa.table({"text": texts, "source": sources}).filter(pa.array(fresh))

    def take_bytes(self, nbytes: int) -> pa.Table:
        """Whole documents until their text reaches ``nbytes``."""
        batches, total = [], 0
        while total < nbytes:
            batch = self.next_batch()
            cumulative = total + np.cumsum(pc.binary_length(batch["text"]).to_numpy())
            take = min(batch.num_rows, int(np.searchsorted(cumulative, nbytes)) + 1)
            batches.append(batch.slice(0, take))
            total = int(cumulative[take - 1])
        return (
            pa.concat_tables(batches)
            if batches
            else pa.table({"text": pa.array([], pa.string()), "source": pa.array([], pa.string())})
        )


def synthesize_documents(
    pool: _TokenPool, num_docs: int, rng: np.random.Generator, max_mutation_rate: float
) -> pa.StringArray:
    """``num_docs`` documents of mutated windows of a pool's token stream."""
    windows_per_doc = rng.integers(1, MAX_WINDOWS_PER_DOC + 1, num_docs)
    window_tokens = rng.lognormal(np.log(MEDIAN_WINDOW_TOKENS), WINDOW_TOKENS_SIGMA, int(windows_per_doc.sum()))
    window_tokens = np.clip(window_tokens, MIN_WINDOW_TOKENS, min(MAX_WINDOW_TOKENS, len(pool.stream))).astype(np.int64)
    window_starts = rng.integers(0, len(pool.stream) - window_tokens + 1)
    tokens = pool.stream[_concatenated_ranges(window_starts, window_tokens)]
    first_window = np.concatenate([[0], np.cumsum(windows_per_doc)[:-1]])
    doc_offsets = np.concatenate([[0], np.cumsum(np.add.reduceat(window_tokens, first_window))])
    tokens, doc_offsets = _mutate(tokens, doc_offsets, pool.stream, rng, max_mutation_rate)
    words = pool.vocabulary.take(pa.array(tokens))
    joined = pc.binary_join(
        pa.LargeListArray.from_arrays(pa.array(doc_offsets), words), pa.scalar("", pa.large_string())
    )
    return joined.cast(pa.string())


def _concatenated_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lengths)]) without the loop."""
    range_offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return np.arange(int(lengths.sum())) + np.repeat(starts - range_offsets, lengths)


def _mutate(
    tokens: np.ndarray, doc_offsets: np.ndarray, stream: np.ndarray, rng: np.random.Generator, max_rate: float
) -> tuple[np.ndarray, np.ndarray]:
    """Substitute, swap and drop tokens, each at the document's rate; a document's first token always stays."""
    doc_lengths = np.diff(doc_offsets)
    rates = np.repeat(rng.uniform(0, max_rate, len(doc_lengths)), doc_lengths)
    substitute = rng.random(len(tokens)) < rates
    tokens[substitute] = stream[rng.integers(0, len(stream), int(substitute.sum()))]
    swap = np.flatnonzero(rng.random(len(tokens)) < rates)
    swap = swap[~np.isin(swap + 1, doc_offsets)]
    tokens[swap], tokens[swap + 1] = tokens[swap + 1], tokens[swap]
    keep = rng.random(len(tokens)) >= rates
    keep[doc_offsets[:-1]] = True
    kept_per_doc = np.add.reduceat(keep.astype(np.int64), doc_offsets[:-1])
    return tokens[keep], np.concatenate([[0], np.cumsum(kept_per_doc)])


def harvest_pools(rng: np.random.Generator) -> list[_TokenPool]:
    """A token pool per text source this machine has; missing sources are skipped."""
    pools = [pool for source in machine_text_sources() if (pool := _harvest(source, rng)) is not None]
    if not pools:
        raise RuntimeError(
            "found no readable text (Python stdlib, /usr/share/doc, /usr/share/man, /usr/share/locale); "
            "run on a machine with a Python install and documentation"
        )
    return pools


def machine_text_sources() -> list[_TextSource]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    return [
        _TextSource("python_stdlib", lambda: _files(stdlib, "*.py", {"site-packages", "__pycache__"}), _read_text),
        _TextSource("debian_docs", lambda: _files(Path("/usr/share/doc"), "*"), _read_text),
        _TextSource("licenses", lambda: _files(Path("/usr/share/common-licenses"), "*"), _read_text),
        _TextSource("man_pages", lambda: _files(Path("/usr/share/man"), "*.gz"), _read_man_page),
        _TextSource("translations", lambda: _files(Path("/usr/share/locale"), "*.mo"), _read_catalog),
    ]


def _files(root: Path, pattern: str, excluded_dirs: set[str] | None = None) -> list[Path]:
    if not root.is_dir():
        return []
    excluded = excluded_dirs or set()
    return sorted(
        path
        for path in root.rglob(pattern)
        if path.is_file() and not path.is_symlink() and excluded.isdisjoint(path.relative_to(root).parts)
    )


def _harvest(source: _TextSource, rng: np.random.Generator) -> _TokenPool | None:
    """Files of a source in a seeded order, read until the pool holds POOL_BYTES_PER_SOURCE."""
    files = source.files()
    texts, total = [], 0
    for index in rng.permutation(len(files)):
        text = source.read(files[index])
        if text:
            texts.append(text)
            total += len(text)
        if total >= POOL_BYTES_PER_SOURCE:
            break
    if not texts:
        return None
    encoded = pc.dictionary_encode(_tokenize("\n".join(texts).encode()))
    return _TokenPool(source.name, encoded.dictionary, encoded.indices.to_numpy())


def _tokenize(blob: bytes) -> pa.LargeStringArray:
    """Words with their trailing whitespace: joining them with "" gives the text back."""
    data = np.frombuffer(blob, dtype=np.uint8)
    space = _IS_ASCII_SPACE[data]
    starts = np.flatnonzero(~space & np.concatenate([[True], space[:-1]]))
    offsets = np.append(starts, len(data)).astype(np.int64)
    return pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(offsets), pa.py_buffer(blob))


def _read_text(path: Path) -> str | None:
    """A small UTF-8 text file (gzip allowed); None for binary, non-UTF-8 or oversized files."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path) as stream:
                data = stream.read(MAX_FILE_BYTES + 1)
        elif path.stat().st_size <= MAX_FILE_BYTES:
            data = path.read_bytes()
        else:
            return None
        text = data.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError):
        return None
    return text if len(data) <= MAX_FILE_BYTES and "\x00" not in text else None


def _read_man_page(path: Path) -> str | None:
    roff = _read_text(path)
    return _roff_to_text(roff) if roff else None


def _roff_to_text(roff: str) -> str:
    """The running text of a man page: comments and layout requests dropped, font escapes removed."""
    lines = []
    for line in roff.splitlines():
        if _ROFF_COMMENT.match(line):
            continue
        if line.startswith((".", "'")):
            text_macro = _ROFF_TEXT_MACRO.match(line)
            if text_macro is None:
                continue
            line = line[text_macro.end() :].replace('"', "")
        lines.append(_ROFF_ESCAPE.sub("", line).replace("\\-", "-").replace("\\e", "\\"))
    return "\n".join(lines)


def _read_catalog(path: Path) -> str | None:
    try:
        return "\n".join(read_mo_translations(path))
    except (OSError, ValueError, LookupError, struct.error):
        return None
