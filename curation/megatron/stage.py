"""`corpusmill tokenize IN --tokenizer MODEL --out DIR`: documents into Megatron shards.

Two resumable phases:
  encode  one unit per input shard: the worker loads the model once, encodes byte-bounded
          batches and writes one part per component it meets into _work/encode/
  merge   one unit per component: its parts, in input order, concatenated into
          shards/NAME.bin/.idx, both files renamed into place when complete
``tokenized.json`` (every prefix, the tokenizer's sha256; see ``manifest.py``) is the
run's completion marker: published last, after ``stats.json`` and ``rejects/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpusmill.curation.atomic import TMP_MARKER
from corpusmill.curation.command import StageCommand
from corpusmill.curation.dataset import REJECTS_DIR, SHARDS_DIR, Dataset, ShardInfo, reject_table, text_bytes
from corpusmill.curation.documents import split_invalid_documents, valid_mask
from corpusmill.curation.errors import ConfigError
from corpusmill.curation.executor import Executor
from corpusmill.curation.megatron.components import (
    DEFAULT_KEYS,
    SPLIT,
    check_key_columns,
    component_values,
    holdout_splits,
    prefix_names,
)
from corpusmill.curation.megatron.encoder import DocumentEncoder, TokenizerInfo, describe_tokenizer
from corpusmill.curation.megatron.indexed import IndexedWriter, bin_path, idx_path
from corpusmill.curation.megatron.manifest import TOKENIZED_FILE, PrefixInfo, TokenizedManifest
from corpusmill.curation.megatron.parts import ComponentParts
from corpusmill.curation.options import option
from corpusmill.curation.stage import StageRun, json_config, shard_units
from corpusmill.curation.stats import AccountingError, StageStats
from corpusmill.curation.unit_outputs import UnitOutputs

STAGE = "tokenize"
NO_TOKENS = "no_tokens"
READ_BATCH_ROWS = 1024
# Text per sentencepiece call: bounds the Python token lists alive at once (~40 bytes a token).
DEFAULT_BATCH_BYTES = 4 * 2**20


@dataclass(frozen=True, kw_only=True)
class TokenizeOptions:
    """`corpusmill tokenize IN --tokenizer MODEL --out DIR [--split-by KEYS] [--valid-fraction F] ...`."""

    input: str = option(positional=True, help="input dataset directory (classified, for the default --split-by)")
    tokenizer: str = option(help="SentencePiece .model file, or a directory holding tokenizer.model")
    out: str = option(help=f"output directory: {TOKENIZED_FILE}, stats.json, shards/*.bin/.idx")
    bos: bool = option(False, help="put the model's BOS token before every document")
    split_by: tuple[str, ...] = option(
        DEFAULT_KEYS,
        help="comma-separated keys; one prefix per distinct combination. `language` is code_lang for code, "
        "lang otherwise; any other column works too, e.g. quality_bucket",
    )
    valid_fraction: float = option(0.0, help="documents held out into .valid prefixes (by id hash)")
    test_fraction: float = option(0.0, help="documents held out into .test prefixes (by id hash)")
    batch_mb: float = option(DEFAULT_BATCH_BYTES / 2**20, help="text per encode call")

    def __post_init__(self) -> None:
        fractions = (self.valid_fraction, self.test_fraction)
        if any(f < 0 for f in fractions) or sum(fractions) >= 1:
            raise ConfigError(
                f"--valid-fraction {self.valid_fraction} and --test-fraction {self.test_fraction}: "
                "each must be >= 0 and together below 1"
            )
        if not self.split_by or len(set(self.split_by)) != len(self.split_by):
            raise ConfigError(f"--split-by {','.join(self.split_by)}: give one or more distinct keys")

    @property
    def batch_bytes(self) -> int:
        return max(1, int(self.batch_mb * 2**20))


@lru_cache(maxsize=2)
def _encoder(info: TokenizerInfo) -> DocumentEncoder:
    """One model per worker process: Ray reuses workers across units."""
    return DocumentEncoder(info)


def _byte_chunks(table: pa.Table, rows: np.ndarray, max_bytes: int) -> list[tuple[pa.Table, np.ndarray]]:
    """Consecutive slices of at most ``max_bytes`` of text (at least one row each)."""
    sizes = pc.binary_length(table["text"]).to_numpy(zero_copy_only=False).astype(np.int64)
    chunk_ids = (np.cumsum(sizes) - sizes) // max_bytes
    bounds = np.flatnonzero(np.diff(chunk_ids, prepend=-1))
    ends = [*bounds[1:], table.num_rows]
    return [(table.slice(start, end - start), rows[start:end]) for start, end in zip(bounds, ends)]


@dataclass(frozen=True)
class _EncodeShard:
    dataset: Dataset
    tokenizer: TokenizerInfo
    options: TokenizeOptions

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        dataset = self.dataset
        shard = dataset.shards[unit["index"]]
        outputs = UnitOutputs(run, unit["unit_id"])
        key_names = (*self.options.split_by, SPLIT)
        parts = ComponentParts(run.work_dir("encode"), unit["unit_id"], self.tokenizer.dtype, key_names)
        with parts:
            for batch, rows in dataset.iter_numbered_batches(shard, batch_rows=READ_BATCH_ROWS):
                outputs.stats.add_input(batch.num_rows, text_bytes(batch))
                check_key_columns(batch.schema.names, self.options.split_by, str(dataset.shard_path(shard)))
                valid_rows = rows[valid_mask(batch, shard.name)]
                valid, rejected = split_invalid_documents(batch, STAGE, shard.name, rows)
                outputs.reject(rejected)
                for chunk, chunk_rows in _byte_chunks(valid, valid_rows, self.options.batch_bytes):
                    self._encode(chunk, f"{shard.name}:", chunk_rows, outputs, parts)
        return {**outputs.record(), "parts": parts.records(run.out)}

    def _encode(
        self, chunk: pa.Table, location: str, rows: np.ndarray, outputs: UnitOutputs, parts: ComponentParts
    ) -> None:
        encoded = _encoder(self.tokenizer).encode(chunk["text"].to_pylist())
        empty = encoded.lengths == 0
        if empty.any():
            outputs.reject(_no_token_rejects(chunk.filter(pa.array(empty)), [f"{location}{r}" for r in rows[empty]]))
            chunk = chunk.filter(pa.array(~empty))
        text_sizes = pc.binary_length(chunk["text"]).to_numpy(zero_copy_only=False).astype(np.int64)
        outputs.stats.add_output(chunk.num_rows, int(text_sizes.sum()))
        splits = holdout_splits(chunk["id"].to_pylist(), self.options.valid_fraction, self.options.test_fraction)
        components = [(*values, split) for values, split in zip(component_values(chunk, self.options.split_by), splits)]
        parts.add(components, encoded.tokens, encoded.lengths[~empty], text_sizes)


def _no_token_rejects(table: pa.Table, locations: list[str]) -> pa.Table:
    return reject_table(
        STAGE,
        [NO_TOKENS] * table.num_rows,
        ["the tokenizer turns this text into no tokens"] * table.num_rows,
        locations,
        table["source"].to_pylist(),
        table["id"].to_pylist(),
        [text.encode() for text in table["text"].to_pylist()],
    )


@dataclass(frozen=True)
class _MergeComponent:
    dtype: str

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        final = run.out / unit["prefix"]
        # Temporaries of an attempt killed mid-write are named after the prefix, not the unit.
        for path in (bin_path(final), idx_path(final)):
            for leftover in path.parent.glob(f"{path.name}{TMP_MARKER}*"):
                leftover.unlink()
        with IndexedWriter(final, np.dtype(self.dtype)) as writer:
            for part in unit["parts"]:
                writer.append_prefix(run.out / part)
        return {
            "unit_id": unit["unit_id"],
            "documents": writer.documents,
            "tokens": writer.tokens,
            "bin_bytes": bin_path(final).stat().st_size,
        }


def _merge_units(encode_records: list[dict[str, Any]], key_names: tuple[str, ...]) -> list[dict[str, Any]]:
    """One unit per component, its parts in input-shard order; components sorted by their values."""
    parts: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for record in encode_records:
        for part in record["parts"]:
            parts.setdefault(tuple(part["keys"][key] for key in key_names), []).append(part)
    components = sorted(parts)
    names = prefix_names([dict(zip(key_names, component)) for component in components])
    return [
        {
            "unit_id": f"c{index:05d}",
            "prefix": f"{SHARDS_DIR}/{name}",
            "keys": dict(zip(key_names, component)),
            "parts": [part["part"] for part in parts[component]],
            "documents": sum(part["documents"] for part in parts[component]),
            "tokens": sum(part["tokens"] for part in parts[component]),
            "text_bytes": sum(part["text_bytes"] for part in parts[component]),
        }
        for index, (component, name) in enumerate(zip(components, names))
    ]


def _publish(
    run: StageRun,
    tokenizer: TokenizerInfo,
    options: TokenizeOptions,
    encode_records: list[dict[str, Any]],
    merge_units: list[dict[str, Any]],
    merge_records: list[dict[str, Any]],
) -> TokenizedManifest:
    """Check that every prefix holds what its parts held, then publish rejects, stats and tokenized.json."""
    stats = StageStats(STAGE)
    for record in encode_records:
        stats.merge(StageStats.from_dict(record["stats"]))
    stats.count("tokens", sum(record["tokens"] for record in merge_records))
    stats.count("prefixes", len(merge_records))
    for unit, merged in zip(merge_units, merge_records):
        if (merged["documents"], merged["tokens"]) != (unit["documents"], unit["tokens"]):
            raise AccountingError(f"{STAGE}: {unit['prefix']} holds {merged} but its parts held {unit}")
    if sum(unit["documents"] for unit in merge_units) != stats.output.docs:
        raise AccountingError(f"{STAGE}: prefixes hold other documents than the {stats.output.docs:,} counted out")
    rejects = [
        ShardInfo(**{**shard, "name": str(Path(shard["name"]).relative_to(REJECTS_DIR))})
        for record in encode_records
        for shard in record["rejects"]
    ]
    prefixes = [
        PrefixInfo(
            prefix=unit["prefix"],
            keys=unit["keys"],
            documents=unit["documents"],
            tokens=unit["tokens"],
            text_bytes=unit["text_bytes"],
            bin_bytes=merged["bin_bytes"],
            tokenizer_sha256=tokenizer.sha256,
        )
        for unit, merged in zip(merge_units, merge_records)
    ]
    manifest = TokenizedManifest(
        STAGE, json_config(run.config), tokenizer.to_dict(), [*options.split_by, SPLIT], prefixes
    )
    run.publish(manifest.to_dict(), stats, rejects)
    return manifest


def _dataset_columns(dataset: Dataset) -> list[str]:
    if dataset.manifest is not None and dataset.manifest.columns:
        return list(dataset.manifest.columns)
    return pq.read_schema(dataset.shard_path(dataset.shards[0])).names


def tokenize_dataset(options: TokenizeOptions, *, executor: Executor, overwrite: bool = False) -> TokenizedManifest:
    """Encode every document of ``options.input`` into one Megatron prefix per component under ``options.out``."""
    dataset = Dataset.open(options.input)
    if dataset.shards:
        check_key_columns(_dataset_columns(dataset), options.split_by, str(options.input))
    info = describe_tokenizer(options.tokenizer, options.bos)
    config = {
        "input": str(options.input),
        "input_fingerprint": dataset.fingerprint(),
        # The checksum, not the path, identifies the tokenizer: a moved model still resumes.
        "tokenizer": {key: value for key, value in info.to_dict().items() if key != "model_path"},
        "split_by": list(options.split_by),
        "valid_fraction": options.valid_fraction,
        "test_fraction": options.test_fraction,
    }
    inputs = (str(options.input), str(options.tokenizer))
    run = StageRun(Path(options.out), STAGE, config, marker=TOKENIZED_FILE, inputs=inputs)
    if (finished := run.claim(executor, overwrite)) is not None:
        return TokenizedManifest.from_dict(finished)
    units = shard_units(dataset)
    encode_records = run.run_phase("encode", units, _EncodeShard(dataset, info, options), executor)
    merge_units = _merge_units(encode_records, (*options.split_by, SPLIT))
    merge_records = run.run_phase("merge", merge_units, _MergeComponent(info.dtype.name), executor)
    return _publish(run, info, options, encode_records, merge_units, merge_records)


def format_prefixes(manifest: TokenizedManifest) -> str:
    """The table the CLI prints after a run: every prefix with its documents, tokens and text."""
    width = max([len(prefix.prefix) for prefix in manifest.prefixes] + [6])
    lines = [f"{'prefix':<{width}}  {'documents':>10}  {'tokens':>14}  {'text MB':>9}"]
    for prefix in manifest.prefixes:
        lines.append(
            f"{prefix.prefix:<{width}}  {prefix.documents:>10,}  {prefix.tokens:>14,}  {prefix.text_bytes / 1e6:>9,.2f}"
        )
    lines.append(f"tokenizer sha256 {manifest.tokenizer['sha256']}, {manifest.tokenizer['dtype']} tokens")
    return "\n".join(lines)


COMMANDS = [
    StageCommand(
        ("tokenize",),
        "encode documents into Megatron .bin/.idx shards, one prefix per blend component",
        TokenizeOptions,
        tokenize_dataset,
        format_prefixes,
    )
]
