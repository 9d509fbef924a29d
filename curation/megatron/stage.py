"""`corpusmill tokenize IN --tokenizer MODEL --out DIR`: documents into Megatron shards.

Two resumable phases over Ray:
  encode  one unit per input shard: the worker loads the model once, encodes byte-bounded
          batches and writes one part per component it meets into _work/encode/
  merge   one unit per component: its parts, in input order, concatenated into
          shards/NAME.bin/.idx, both files renamed into place when complete
``manifest.json`` (every prefix, the tokenizer's sha256) is written last, after
``stats.json`` and ``rejects/``: its presence means the output is complete.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpusmill.curation.atomic import TMP_MARKER, write_json_atomic
from corpusmill.curation.dataset import (
    MANIFEST_FILE,
    REJECTS_DIR,
    SHARDS_DIR,
    STATS_FILE,
    Dataset,
    Manifest,
    ShardInfo,
    reject_table,
    text_bytes,
    write_manifest,
)
from corpusmill.curation.shard_map import (
    UnitOutputs,
    dataset_fingerprint,
    split_invalid_documents,
    valid_mask,
)
from corpusmill.curation.stage import WORK_DIR, Executor, StageConfigMismatch, StageRun
from corpusmill.curation.stats import AccountingError, StageStats
from corpusmill.curation.megatron.components import (
    DEFAULT_KEYS,
    SPLIT,
    check_key_columns,
    component_values,
    holdout_splits,
    prefix_names,
)
from corpusmill.curation.megatron.encoder import DocumentEncoder, TokenizerInfo, TokenizerModelError, describe_tokenizer
from corpusmill.curation.megatron.indexed import IndexedWriter, bin_path, idx_path
from corpusmill.curation.megatron.manifest import (
    PrefixInfo,
    TokenizedManifest,
    read_tokenized_manifest,
    write_tokenized_manifest,
)
from corpusmill.curation.megatron.parts import ComponentParts

STAGE = "tokenize"
NO_TOKENS = "no_tokens"
READ_BATCH_ROWS = 1024
# Text per sentencepiece call: bounds the Python token lists alive at once (~40 bytes a token).
DEFAULT_BATCH_BYTES = 4 * 2**20


class TokenizeOptionsError(ValueError):
    """Options that cannot work together; the message names them."""


@dataclass(frozen=True)
class TokenizeOptions:
    split_by: tuple[str, ...] = DEFAULT_KEYS
    valid_fraction: float = 0.0
    test_fraction: float = 0.0
    batch_bytes: int = DEFAULT_BATCH_BYTES

    def check(self) -> None:
        fractions = (self.valid_fraction, self.test_fraction)
        if any(f < 0 for f in fractions) or sum(fractions) >= 1:
            raise TokenizeOptionsError(
                f"--valid-fraction {self.valid_fraction} and --test-fraction {self.test_fraction}: "
                "each must be >= 0 and together below 1"
            )
        if not self.split_by or len(set(self.split_by)) != len(self.split_by):
            raise TokenizeOptionsError(f"--split-by {','.join(self.split_by)}: give one or more distinct keys")


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
            offset = 0
            for batch in dataset.iter_batches(shard, batch_rows=READ_BATCH_ROWS):
                outputs.stats.add_input(batch.num_rows, text_bytes(batch))
                rows = np.arange(offset, offset + batch.num_rows)
                offset += batch.num_rows
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


def _finished(run: StageRun) -> TokenizedManifest | None:
    """The manifest when this exact run already finished here; refuse one made with other settings."""
    if not (run.out / MANIFEST_FILE).exists():
        return None
    manifest = read_tokenized_manifest(run.out)
    if manifest.stage == STAGE and manifest.config == json.loads(json.dumps(run.config)):
        print(
            f"[{STAGE}] already complete in {run.out}: {len(manifest.prefixes)} prefixes, "
            f"{manifest.tokens:,} tokens; nothing to do (pass --overwrite to redo)",
            file=sys.stderr,
        )
        return manifest
    raise StageConfigMismatch(
        f"{run.out} already holds tokenized shards made with other settings or input; "
        "choose another --out or pass --overwrite"
    )


def _publish(
    run: StageRun,
    tokenizer: TokenizerInfo,
    options: TokenizeOptions,
    encode_records: list[dict[str, Any]],
    merge_units: list[dict[str, Any]],
    merge_records: list[dict[str, Any]],
) -> TokenizedManifest:
    """Check the accounting, then write rejects, stats and, last, the manifest."""
    stats = StageStats(STAGE)
    for record in encode_records:
        stats.merge(StageStats.from_dict(record["stats"]))
    stats.count("tokens", sum(record["tokens"] for record in merge_records))
    stats.count("prefixes", len(merge_records))
    stats.check()
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
    write_manifest(run.out / REJECTS_DIR, Manifest(STAGE, run.config, rejects))
    write_json_atomic(run.out / STATS_FILE, stats.to_dict())
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
    manifest = TokenizedManifest(STAGE, run.config, tokenizer.to_dict(), [*options.split_by, SPLIT], prefixes)
    write_tokenized_manifest(run.out, manifest)
    shutil.rmtree(run.out / WORK_DIR, ignore_errors=True)
    return manifest


def _dataset_columns(dataset: Dataset) -> list[str]:
    if dataset.manifest is not None and dataset.manifest.columns:
        return list(dataset.manifest.columns)
    return pq.read_schema(dataset.shard_path(dataset.shards[0])).names


def tokenize_dataset(
    input_dir: str | Path,
    out_dir: str | Path,
    tokenizer: str | Path,
    *,
    add_bos: bool = False,
    options: TokenizeOptions = TokenizeOptions(),
    overwrite: bool = False,
    executor: Executor | None = None,
) -> TokenizedManifest:
    """Encode every document of ``input_dir`` into one Megatron prefix per component under ``out_dir``."""
    options.check()
    dataset = Dataset.open(input_dir)
    if dataset.shards:
        check_key_columns(_dataset_columns(dataset), options.split_by, str(input_dir))
    info = describe_tokenizer(tokenizer, add_bos)
    config = {
        "input": str(input_dir),
        "input_fingerprint": dataset_fingerprint(dataset),
        # The checksum, not the path, identifies the tokenizer: a moved model still resumes.
        "tokenizer": {key: value for key, value in info.to_dict().items() if key != "model_path"},
        "split_by": list(options.split_by),
        "valid_fraction": options.valid_fraction,
        "test_fraction": options.test_fraction,
    }
    run = StageRun(Path(out_dir), STAGE, config)
    if not overwrite and (manifest := _finished(run)) is not None:
        return manifest
    run.prepare(overwrite)
    if executor is None:
        from corpusmill.pipelines.execution import run_tasks as executor
    units = [{"unit_id": f"s{i:05d}", "index": i, "shard": shard.name} for i, shard in enumerate(dataset.shards)]
    encode_records = run.run_phase("encode", units, _EncodeShard(dataset, info, options), executor)
    merge_units = _merge_units(encode_records, (*options.split_by, SPLIT))
    merge_records = run.run_phase("merge", merge_units, _MergeComponent(info.dtype.name), executor)
    return _publish(run, info, options, encode_records, merge_units, merge_records)


def format_prefixes(manifest: TokenizedManifest) -> str:
    width = max([len(prefix.prefix) for prefix in manifest.prefixes] + [6])
    lines = [f"{'prefix':<{width}}  {'documents':>10}  {'tokens':>14}  {'text MB':>9}"]
    for prefix in manifest.prefixes:
        lines.append(
            f"{prefix.prefix:<{width}}  {prefix.documents:>10,}  {prefix.tokens:>14,}  {prefix.text_bytes / 1e6:>9,.2f}"
        )
    lines.append(f"tokenizer sha256 {manifest.tokenizer['sha256']}, {manifest.tokenizer['dtype']} tokens")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="input dataset directory (classified, for the default --split-by)")
    parser.add_argument(
        "--tokenizer", required=True, help="SentencePiece .model file, or a directory holding tokenizer.model"
    )
    parser.add_argument("--out", required=True, help="output directory: manifest.json, stats.json, shards/*.bin/.idx")
    parser.add_argument("--bos", action="store_true", help="put the model's BOS token before every document")
    parser.add_argument(
        "--split-by",
        default=",".join(DEFAULT_KEYS),
        help="comma-separated keys; one prefix per distinct combination. `language` is code_lang for code, "
        "lang otherwise; any other column works too, e.g. quality_bucket (default: %(default)s)",
    )
    parser.add_argument(
        "--valid-fraction", type=float, default=0.0, help="documents held out into .valid prefixes (by id hash)"
    )
    parser.add_argument(
        "--test-fraction", type=float, default=0.0, help="documents held out into .test prefixes (by id hash)"
    )
    parser.add_argument(
        "--batch-mb",
        type=float,
        default=DEFAULT_BATCH_BYTES / 2**20,
        help="text per encode call (default: %(default)s)",
    )


def main(args: argparse.Namespace) -> TokenizedManifest:
    from corpusmill.pipelines.cli import CliError

    options = TokenizeOptions(
        split_by=tuple(key.strip() for key in args.split_by.split(",") if key.strip()),
        valid_fraction=args.valid_fraction,
        test_fraction=args.test_fraction,
        batch_bytes=max(1, int(args.batch_mb * 2**20)),
    )
    try:
        manifest = tokenize_dataset(
            args.input, args.out, args.tokenizer, add_bos=args.bos, options=options, overwrite=args.overwrite
        )
    except (TokenizeOptionsError, TokenizerModelError) as error:
        raise CliError(str(error)) from error
    print(format_prefixes(manifest))
    return manifest
