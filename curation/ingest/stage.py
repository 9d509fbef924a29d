"""`corpusmill ingest`: raw inputs -> a document dataset, in three resumable phases.

  read   one unit per input file or file-tree chunk: parse, screen, write documents and
         rejects under ``_work/read/``, the documents' id keys partitioned by id, and each
         raw file's size, mtime and content checksum
  ids    one unit per id partition: later documents with an id already seen are named
  place  one unit per read unit: its files are linked into ``shards/`` and ``rejects/``,
         or rewritten without repeated ids (``duplicate_id`` rejects) and with metadata
         types unified across files (recorded in the manifest's ``schema_drift``)

A re-run first checks every raw file a finished or partial run recorded: a file whose size
or mtime changed is checksummed again, and a changed one is named instead of being reported
"already complete" over stale data.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from corpusmill.curation.atomic import read_json
from corpusmill.curation.checksums import Checksum, file_checksum
from corpusmill.curation.command import StageCommand
from corpusmill.curation.dataset import Manifest, text_bytes
from corpusmill.curation.errors import ConfigError, CorpusmillError
from corpusmill.curation.executor import Executor
from corpusmill.curation.ingest import ids
from corpusmill.curation.ingest.discover import FORMATS, plan_inputs
from corpusmill.curation.ingest.place import IDS_PHASE, READ_PHASE, PlaceUnit, unified_types
from corpusmill.curation.ingest.readers import (
    STAGE,
    Chunk,
    ReadOptions,
    check_parquet_columns,
    read_files,
    read_jsonl,
    read_parquet,
)
from corpusmill.curation.ingest.screen import LOCATION, ScreenRules, screen_documents
from corpusmill.curation.options import option
from corpusmill.curation.partition import read_partition, write_partitioned
from corpusmill.curation.stage import CONFIG_RECORD, StageRun, json_config
from corpusmill.curation.unit_outputs import UnitOutputs


class InputChangedError(CorpusmillError, RuntimeError):
    """A raw input changed after a run into the same --out read it."""


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
        help="auto: by file suffix; a directory holding only data files (and markers like _SUCCESS) is read "
        "as data files, any other directory as a tree of documents (one per file)",
    )
    source: str | None = option(
        None, help="`source` of inputs without =NAME (default: the input's file or folder name)"
    )
    follow_symlinks: bool = option(
        False, help="follow symlinks found in input folders and globs (each folder is read once; loops end)"
    )


def read_unit(unit: dict[str, Any], options: ReadOptions, inputs: list[dict[str, Any]]) -> Iterator[Chunk]:
    if unit["kind"] == "files":
        return read_files(Path(unit["root"]), unit["files"], unit["source"], options, inputs, unit["prefix"])
    reader = read_jsonl if unit["kind"] == "jsonl" else read_parquet
    return reader(Path(unit["path"]), unit["rel"], unit["source"], options, inputs)


@dataclass(frozen=True)
class _ReadUnit:
    options: ReadOptions
    num_partitions: int

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        work = run.work_dir(READ_PHASE)
        outputs = UnitOutputs(run, unit["unit_id"], under=str(work.relative_to(run.out)))
        rules = ScreenRules(max_doc_bytes=self.options.max_doc_bytes)
        inputs: list[dict[str, Any]] = []
        keys = []
        for candidates, rejects in read_unit(unit, self.options, inputs):
            if rejects is not None:
                outputs.stats.add_input(rejects.num_rows, int(pc.sum(rejects["raw_bytes"]).as_py() or 0))
                outputs.reject(rejects)
            if candidates is not None:
                outputs.stats.add_input(candidates.num_rows, text_bytes(candidates))
                documents, screened_out = screen_documents(candidates, STAGE, rules)
                outputs.reject(screened_out)
                where = pc.binary_join_element_wise(documents[LOCATION], f" ({unit['source']})", "")
                keys.append(documents.select(["id"]).append_column("where", where))
                outputs.keep(documents.drop_columns([LOCATION]))
        ids.write_keys(work / f"{unit['unit_id']}.ids.arrow", keys, unit["index"], self.num_partitions)
        return {**outputs.record(), "inputs": inputs}


@dataclass(frozen=True)
class _FindDuplicateIds:
    num_units: int

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        keys = read_partition(sorted(run.work_dir(READ_PHASE).glob("*.ids.arrow")), unit["partition"])
        later = ids.later_duplicates(keys)
        path = run.work_dir(IDS_PHASE) / f"{unit['unit_id']}.arrow"
        write_partitioned(path, later, later["unit"].to_numpy().astype("int64"), self.num_units)
        return {"unit_id": unit["unit_id"], "duplicates": later.num_rows}


def ingest(options: IngestOptions, *, executor: Executor, overwrite: bool = False) -> Manifest:
    """Read every input into a document dataset at ``options.out``; resumable like every stage."""
    if options.max_doc_bytes < 1:
        raise ConfigError(f"--max-doc-bytes must be a positive number of bytes, got {options.max_doc_bytes}")
    plan = plan_inputs(list(options.inputs), options.format, options.source, options.follow_symlinks)
    for note in plan.notes:
        executor.progress.note(f"[{STAGE}] {note}")
    for unit in plan.units:
        if unit["kind"] == "parquet":
            _check_parquet_schema(Path(unit["path"]))
    listing = hashlib.sha256(json.dumps(plan.units, sort_keys=True).encode()).hexdigest()[:16]
    config = {
        "inputs": list(options.inputs),
        "format": options.format,
        "source": options.source,
        "text_field": options.text_field,
        "id_field": options.id_field,
        "max_doc_bytes": options.max_doc_bytes,
        "follow_symlinks": options.follow_symlinks,
        "input_fingerprint": listing,
    }
    run = StageRun(Path(options.out), STAGE, config, inputs=tuple(plan.paths))
    if not overwrite:
        check_inputs_unchanged(run)
    if (finished := run.claim(executor, overwrite)) is not None:
        return Manifest.from_dict(finished)
    read_options = ReadOptions(
        text_field=options.text_field, id_field=options.id_field, max_doc_bytes=options.max_doc_bytes
    )
    num_partitions = run.pinned("id_partitions", ids.partitions_for(sum(unit["size"] for unit in plan.units)))
    reads = run.run_phase(READ_PHASE, plan.units, _ReadUnit(read_options, num_partitions), executor)
    partition_units = [{"unit_id": f"p{p:05d}", "partition": p} for p in range(num_partitions)]
    run.run_phase(IDS_PHASE, partition_units, _FindDuplicateIds(len(plan.units)), executor)
    targets, drift = unified_types(run, reads)
    place_units = [{"unit_id": unit["unit_id"], "index": unit["index"]} for unit in plan.units]
    records = run.run_phase("place", place_units, PlaceUnit(targets), executor)
    summary = [_summarize(unit, read["inputs"]) for unit, read in zip(plan.units, reads)]
    return run.finish(records, inputs=summary, schema_drift=drift)


def _check_parquet_schema(path: Path) -> None:
    """File-level problems of a Parquet input, named on the driver before any work (unreadable
    footers are left to the reader, which rejects the file as unreadable_input)."""
    try:
        names = pq.read_schema(path).names
    except (pa.ArrowException, OSError):
        return
    check_parquet_columns(names, path)


def check_inputs_unchanged(run: StageRun) -> None:
    """Refuse to resume or report complete when a raw file an earlier run read has changed.

    Only a run with the same settings is checked (the listing fingerprint aside, which a
    resized file changes): one with other settings is refused by ``claim`` anyway.
    """
    config = run.progress_dir / CONFIG_RECORD
    records = run.progress_dir / READ_PHASE
    if not config.exists() or not records.is_dir():
        return
    previous = read_json(config)
    if previous.get("stage") != STAGE or _settings(previous.get("config", {})) != _settings(run.config):
        return
    for path in sorted(records.glob("*.json")):
        for recorded in read_json(path).get("inputs", []):
            _check_input(recorded, run.out)


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in json_config(config).items() if name != "input_fingerprint"}


def _check_input(recorded: dict[str, Any], out: Path) -> None:
    path = Path(recorded["path"])
    try:
        status = path.stat()
    except FileNotFoundError:
        raise InputChangedError(
            f"{path} was ingested into {out} but is gone; restore it, "
            "or pass --overwrite to ingest the inputs as they are"
        ) from None
    if (status.st_size, status.st_mtime_ns) == (recorded["size"], recorded["mtime_ns"]):
        return
    if status.st_size != recorded["size"] or file_checksum(path) != recorded["checksum"]:
        raise InputChangedError(
            f"{path} changed since it was ingested into {out} (its content checksum differs); "
            "restore it, or pass --overwrite to ingest it again"
        )


def _summarize(unit: dict[str, Any], inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest's line for one unit's raw input: the file, or a file-tree chunk as a whole."""
    if unit["kind"] != "files":
        entry = inputs[0] if inputs else {"path": unit["path"], "size": unit["size"], "checksum": None}
        return {"path": entry["path"], "size": entry["size"], "checksum": entry["checksum"]}
    combined = Checksum()
    for entry in inputs:
        combined.update(f"{entry['path']}\0{entry['checksum']}\n".encode())
    size = sum(entry["size"] for entry in inputs)
    return {"path": unit["root"], "files": len(inputs), "size": size, "checksum": combined.value()}


COMMANDS = [
    StageCommand(
        ("ingest",),
        "normalise JSONL / Parquet / file trees into a document dataset",
        IngestOptions,
        ingest,
    )
]
