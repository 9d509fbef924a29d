"""`corpusmill ingest`: raw inputs -> a document dataset, one resumable unit per input file or file chunk."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from corpusmill.curation.command import StageCommand
from corpusmill.curation.dataset import Manifest, text_bytes
from corpusmill.curation.executor import Executor
from corpusmill.curation.ingest.discover import FORMATS, plan_units
from corpusmill.curation.ingest.readers import STAGE, Chunk, ReadOptions, read_files, read_jsonl, read_parquet
from corpusmill.curation.ingest.screen import ScreenRules, screen_documents
from corpusmill.curation.options import option
from corpusmill.curation.stage import StageRun
from corpusmill.curation.unit_outputs import UnitOutputs


@dataclass(frozen=True, kw_only=True)
class IngestOptions(ReadOptions):
    """`corpusmill ingest INPUT[=SOURCE]... --out OUT`; the record fields come from ReadOptions."""

    inputs: tuple[str, ...] = option(
        positional=True,
        metavar="INPUT[=SOURCE]",
        help="JSONL (.jsonl, .jsonl.gz, .jsonl.zst) or Parquet files, or directories; "
        "append =NAME to set that input's source",
    )
    out: str = option(help="output dataset directory")
    format: str = option(
        "auto",
        choices=FORMATS,
        help="auto: by file suffix; a directory holding only data files is read as data files, "
        "any other directory as a tree of documents (one per file)",
    )
    source: str | None = option(
        None, help="`source` of inputs without =NAME (default: the input's file or folder name)"
    )


def read_unit(unit: dict[str, Any], options: ReadOptions) -> Iterator[Chunk]:
    if unit["kind"] == "files":
        return read_files(Path(unit["root"]), unit["files"], unit["source"], options)
    reader = read_jsonl if unit["kind"] == "jsonl" else read_parquet
    return reader(Path(unit["path"]), unit["rel"], unit["source"], options)


@dataclass(frozen=True)
class _IngestUnit:
    options: ReadOptions

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        outputs = UnitOutputs(run, unit["unit_id"])
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


def ingest(options: IngestOptions, *, executor: Executor, overwrite: bool = False) -> Manifest:
    """Read every input into a document dataset at ``options.out``; resumable like every stage."""
    units = plan_units(list(options.inputs), options.format, options.source)
    listing = hashlib.sha256(json.dumps(units, sort_keys=True).encode()).hexdigest()[:16]
    config = {
        "inputs": list(options.inputs),
        "format": options.format,
        "source": options.source,
        "text_field": options.text_field,
        "id_field": options.id_field,
        "max_doc_bytes": options.max_doc_bytes,
        "input_fingerprint": listing,
    }
    run = StageRun(Path(options.out), STAGE, config)
    if (finished := run.claim(executor, overwrite)) is not None:
        return Manifest.from_dict(finished)
    read_options = ReadOptions(
        text_field=options.text_field, id_field=options.id_field, max_doc_bytes=options.max_doc_bytes
    )
    records = run.run_phase("read", units, _IngestUnit(read_options), executor)
    return run.finish(records)


COMMANDS = [
    StageCommand(
        ("ingest",),
        "normalise JSONL / Parquet / file trees into a document dataset",
        IngestOptions,
        ingest,
    )
]
