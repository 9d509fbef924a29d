"""`corpusmill ingest`: raw inputs -> a document dataset, one resumable unit per input file or file chunk."""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from corpusmill.curation.dataset import DEFAULT_SHARD_BYTES, Manifest, text_bytes
from corpusmill.curation.ingest.discover import FORMATS, plan_units
from corpusmill.curation.ingest.readers import STAGE, Chunk, ReadOptions, read_files, read_jsonl, read_parquet
from corpusmill.curation.ingest.screen import ScreenRules, screen_documents
from corpusmill.curation.shard_map import UnitOutputs, already_done
from corpusmill.curation.stage import Executor, StageRun


def read_unit(unit: dict[str, Any], options: ReadOptions) -> Iterator[Chunk]:
    if unit["kind"] == "files":
        return read_files(Path(unit["root"]), unit["files"], unit["source"], options)
    reader = read_jsonl if unit["kind"] == "jsonl" else read_parquet
    return reader(Path(unit["path"]), unit["rel"], unit["source"], options)


@dataclass(frozen=True)
class _IngestUnit:
    options: ReadOptions
    max_shard_bytes: int

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        outputs = UnitOutputs(run, unit["unit_id"], self.max_shard_bytes)
        rules = ScreenRules(max_doc_bytes=self.options.max_doc_bytes)
        for candidates, rejects in read_unit(unit, self.options):
            if rejects is not None:
                outputs.stats.add_input(rejects.num_rows, int(pc.sum(rejects["raw_bytes"]).as_py() or 0))
                outputs.reject(rejects)
            if candidates is not None:
                outputs.stats.add_input(candidates.num_rows, text_bytes(candidates))
                documents, screened_out = screen_documents(candidates, STAGE, rules)
                outputs.reject(screened_out)
                outputs.keep(documents)
        return outputs.record()


def ingest(
    inputs: list[str],
    out_dir: str | Path,
    *,
    fmt: str = "auto",
    source: str | None = None,
    options: ReadOptions = ReadOptions(),
    overwrite: bool = False,
    executor: Executor | None = None,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
) -> Manifest:
    units = plan_units(inputs, fmt, source)
    listing = hashlib.sha256(json.dumps(units, sort_keys=True).encode()).hexdigest()[:16]
    config = {
        "inputs": list(inputs),
        "format": fmt,
        "source": source,
        "text_field": options.text_field,
        "id_field": options.id_field,
        "max_doc_bytes": options.max_doc_bytes,
        "input_fingerprint": listing,
    }
    run = StageRun(Path(out_dir), STAGE, config)
    if not overwrite and (manifest := already_done(run)) is not None:
        return manifest
    run.prepare(overwrite)
    if executor is None:
        from corpusmill.pipelines.execution import run_tasks as executor
    records = run.run_phase("read", units, _IngestUnit(options, max_shard_bytes), executor)
    return run.finish(records)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT[=SOURCE]",
        help="JSONL (.jsonl, .jsonl.gz, .jsonl.zst) or Parquet files, or directories; "
        "append =NAME to set that input's source",
    )
    parser.add_argument("--out", required=True, help="output dataset directory")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="auto",
        help="auto: by file suffix; a directory holding only data files is read as data files, "
        "any other directory as a tree of documents (one per file)",
    )
    parser.add_argument("--source", default=None, help="`source` of inputs without =NAME (default: the input's file or folder name)")
    parser.add_argument("--text-field", default="text", help="field/column holding the document text (default: text)")
    parser.add_argument(
        "--id-field", default="id", help="field/column holding the document id; ids are generated where it is missing (default: id)"
    )
    parser.add_argument(
        "--max-doc-bytes", type=int, default=ReadOptions.max_doc_bytes, help="larger documents are rejected as too_large (default: 64 MiB)"
    )


def main(args: argparse.Namespace) -> Manifest:
    options = ReadOptions(text_field=args.text_field, id_field=args.id_field, max_doc_bytes=args.max_doc_bytes)
    return ingest(args.inputs, args.out, fmt=args.format, source=args.source, options=options, overwrite=args.overwrite)
