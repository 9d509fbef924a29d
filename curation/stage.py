"""Resumable stage execution: units, completion records, and the final manifest.

A stage is one or more phases; a phase is a list of units (JSON dicts with a
``unit_id``). A unit writes only files whose names start with its ``unit_id``
(under ``shards/``, ``rejects/`` or ``_work/<phase>/``) and, once they are all in
place, a completion record ``_progress/<phase>/<unit_id>.json``. A re-run skips
recorded units and deletes whatever an unrecorded unit left behind before
redoing it, so an interrupted stage finishes without duplicating or losing
documents.

Every stage completes the same way: its *marker* file is written last, and its
presence means "complete". A document dataset's marker is ``manifest.json``
(:meth:`StageRun.finish`); outputs that are not document datasets (tokenized
shards, a tokenizer, an evaluation report) name their own marker and publish it with
:meth:`StageRun.publish`. Either way the marker records the stage and its config, so
a re-run with the same settings does nothing and one with other settings is refused.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from corpusmill.curation import output_lock
from corpusmill.curation.atomic import read_json, write_json_atomic
from corpusmill.curation.dataset import (
    MANIFEST_FILE,
    REJECTS_DIR,
    SHARDS_DIR,
    STATS_FILE,
    Dataset,
    Manifest,
    ShardInfo,
    merge_columns,
    write_manifest,
)
from corpusmill.curation.errors import CorpusmillError
from corpusmill.curation.executor import Executor
from corpusmill.curation.stats import StageStats

PROGRESS_DIR = "_progress"
WORK_DIR = "_work"
CONFIG_RECORD = "config.json"
# What a write error means for the user, by errno: the fix the one-line message names.
_WRITE_FIXES = {
    errno.ENOSPC: "free some space",
    errno.EDQUOT: "free some space or raise the quota",
    errno.EROFS: "make it writable",
    errno.EACCES: "make it writable",
    errno.EIO: "check the disk (an I/O error: see dmesg)",
}
# Errors that may come from reading an input as well: only a path under --out makes them an output error.
_AMBIGUOUS = {errno.EACCES, errno.EIO}

UnitFn = Callable[[dict[str, Any], "StageRun"], dict[str, Any]]


class StageConfigMismatch(CorpusmillError, RuntimeError):
    """The output directory holds work done with different settings."""


class OutputPathError(CorpusmillError, ValueError):
    """``--out`` names something a stage must not write into (a file, an input, a foreign directory)."""


class OutputWriteError(CorpusmillError, RuntimeError):
    """The output directory cannot be written (disk full, read-only); a re-run resumes once it can."""


def json_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config as it reads back from JSON (tuples become lists, paths strings): what markers compare."""
    return json.loads(json.dumps(config, default=str))


def _differences(recorded: dict[str, Any], wanted: dict[str, Any]) -> str:
    """Which settings differ, in words; a changed input fingerprint says the input changed."""
    names = sorted(name for name in {*recorded, *wanted} if recorded.get(name) != wanted.get(name))
    described = ["the input's content (input_fingerprint)" if name == "input_fingerprint" else name for name in names]
    return ", ".join(described) or "the recorded settings"


@dataclass(frozen=True)
class StageRun:
    """Handle on one stage's output directory; picklable, so units get it on workers.

    ``marker`` is the file written last, whose presence means the stage finished here.
    """

    out: Path
    stage: str
    config: dict[str, Any]
    marker: str = MANIFEST_FILE
    # Paths the stage reads: --out may not be one of them, contain one, or lie inside an input folder.
    inputs: tuple[str, ...] = ()
    # Unique per attempt: the owner token of the output lock, checked by every unit before it writes.
    attempt: str = field(default_factory=lambda: uuid.uuid4().hex, compare=False)

    @property
    def progress_dir(self) -> Path:
        return self.out / PROGRESS_DIR

    @property
    def config_hash(self) -> str:
        canonical = json.dumps(self.config, sort_keys=True, default=str).encode()
        return hashlib.sha256(canonical).hexdigest()

    def completed(self) -> dict[str, Any] | None:
        """The marker's content if this exact stage and config already finished here."""
        path = self.out / self.marker
        if not path.exists():
            return None
        finished = read_json(path)
        if not isinstance(finished, dict):
            raise StageConfigMismatch(f"{path} is not a corpusmill record; choose another --out or pass --overwrite")
        if finished.get("stage") == self.stage and finished.get("config") == json_config(self.config):
            return finished
        if "stage" not in finished:
            raise StageConfigMismatch(
                f"{path} was written by an older corpusmill and records no settings; pass --overwrite to redo it"
            )
        if finished.get("stage") != self.stage:
            raise StageConfigMismatch(
                f"{self.out} already holds a finished {finished.get('stage')!r} output; "
                "choose another --out or pass --overwrite"
            )
        raise StageConfigMismatch(
            f"{self.out} already holds a finished {self.stage!r} output made with other settings "
            f"({_differences(finished.get('config', {}), json_config(self.config))} differ); "
            "choose another --out or pass --overwrite"
        )

    def completed_manifest(self) -> Manifest | None:
        """The dataset manifest if this exact stage and config already finished here."""
        finished = self.completed()
        return None if finished is None else Manifest.from_dict(finished)

    def claim(self, executor: Executor, overwrite: bool = False) -> dict[str, Any] | None:
        """Start (or resume) this run; return the marker instead when it already finished.

        The one entry every stage goes through: ``--out`` is checked (never a file, an input
        or a folder corpusmill did not make), the directory is locked for this run, an
        identical finished run is reported and reused, a run with other settings is refused,
        and the directory is claimed. The lock is held until :meth:`publish`.
        """
        self._check_out_path(overwrite)
        with self.output_errors():
            output_lock.acquire(self.progress_dir, self.out, self.attempt, self.stage)
        try:
            if not overwrite and (finished := self.completed()) is not None:
                output_lock.release(self.progress_dir)
                executor.progress.note(
                    f"[{self.stage}] already complete in {self.out}; nothing to do (pass --overwrite to redo)"
                )
                return finished
            with self.output_errors():
                self._prepare(overwrite)
        except BaseException:
            output_lock.release(self.progress_dir)
            raise
        return None

    def _check_out_path(self, overwrite: bool) -> None:
        """Refuse an --out that is a file, is or holds an input, lies in an input folder, or is not ours."""
        if self.out.exists() and not self.out.is_dir():
            raise OutputPathError(f"--out {self.out} is an existing file; name a directory for the output")
        out = self.out.resolve()
        for given in self.inputs:
            source = Path(given).resolve()
            if source == out or out in source.parents:
                raise OutputPathError(
                    f"--out {self.out} is or contains the input {given}; writing there would destroy it: "
                    "choose an --out outside the inputs"
                )
            if source.is_dir() and source in out.parents:
                raise OutputPathError(
                    f"--out {self.out} lies inside the input folder {given}, so a re-run would read its own "
                    "output; choose an --out outside it"
                )
        if self.out.is_dir() and not self._is_stage_output() and _has_content(self.out):
            action = "--overwrite only deletes directories corpusmill made" if overwrite else "it may hold your data"
            raise OutputPathError(
                f"{self.out} is not empty and is not a corpusmill stage output ({action}); choose another --out"
            )

    def _is_stage_output(self) -> bool:
        """corpusmill's own record of a run is what identifies a stage output: nothing else may be deleted."""
        return (self.progress_dir / CONFIG_RECORD).is_file()

    def _prepare(self, overwrite: bool) -> None:
        """Claim the locked directory for this config; refuse to mix runs with different settings."""
        if overwrite:
            self._clear()
        record = self.progress_dir / CONFIG_RECORD
        if record.exists():
            previous = read_json(record)
            if previous.get("config_hash") != self.config_hash:
                raise StageConfigMismatch(
                    f"{self.out} holds a partial {previous.get('stage')!r} run with other settings "
                    f"({_differences(previous.get('config', {}), json_config(self.config))} differ); "
                    "re-run with the same settings to resume, or pass --overwrite to start over"
                )
            return
        write_json_atomic(record, {"stage": self.stage, "config_hash": self.config_hash, "config": self.config})

    def _clear(self) -> None:
        """Everything of an earlier run goes, except the lock this run holds."""
        for child in self.out.iterdir():
            if child.name != PROGRESS_DIR:
                _remove(child)
                continue
            for item in child.iterdir():
                if item.name not in (output_lock.LOCK_FILE, output_lock.OWNER_FILE):
                    _remove(item)

    def check_owner(self) -> None:
        """Raise unless this attempt still owns the output: every unit asks before it writes."""
        output_lock.check_owner(self.progress_dir, self.out, self.attempt)

    @contextmanager
    def output_errors(self) -> Iterator[None]:
        """A full or read-only output becomes one line with the fix; a re-run then resumes."""
        try:
            yield
        except OSError as error:
            explained = explain_write_error(error, self.out)
            if explained is None:
                raise
            raise explained from error

    def pinned(self, name: str, value: Any) -> Any:
        """The value a setting had when this run first started, so a resumed run
        reuses it (settings that change the scratch layout but not the result)."""
        record = self.out / PROGRESS_DIR / f"pinned-{name}.json"
        if record.exists():
            return read_json(record)["value"]
        write_json_atomic(record, {"value": value})
        return value

    def work_dir(self, phase: str) -> Path:
        return self.out / WORK_DIR / phase

    def run_phase(
        self, phase: str, units: list[dict[str, Any]], unit_fn: UnitFn, executor: Executor, num_cpus: float = 1.0
    ) -> list[dict[str, Any]]:
        """Run every unit not yet recorded; return all units' records in unit order."""
        progress = self.out / PROGRESS_DIR / phase
        pending = [u for u in units if not (progress / f"{u['unit_id']}.json").exists()]
        label = f"{self.stage}/{phase}"
        executor.progress.phase_started(label, len(units), len(units) - len(pending))
        if len(pending) < len(units):
            executor.progress.note(f"[{label}] resuming: {len(units) - len(pending)} of {len(units)} units already done")
        if pending:
            executor.map(pending, _UnitTask(self, phase, unit_fn), label=label, num_cpus=num_cpus)
        executor.progress.phase_finished(label)
        return [read_json(progress / f"{u['unit_id']}.json") for u in units]

    def finish(
        self,
        records: list[dict[str, Any]],
        stats: StageStats | None = None,
        *,
        inputs: list[dict[str, Any]] | None = None,
        schema_drift: dict[str, str] | None = None,
    ) -> Manifest:
        """Merge unit records, check the accounting, then publish stats, rejects and the manifest.

        A record may carry ``shards``, ``rejects`` (ShardInfo dicts), ``columns``
        and ``stats``; ``stats`` adds counters that no single unit owns. ``inputs`` (the
        raw files read, with checksums) and ``schema_drift`` (columns whose type was unified)
        go into the manifest as they are.
        """
        total = StageStats(self.stage)
        shards, rejects = [], []
        for record in records:
            shards += [ShardInfo(**s) for s in record.get("shards", [])]
            rejects += [_rebase(ShardInfo(**s), REJECTS_DIR) for s in record.get("rejects", [])]
            if "stats" in record:
                total.merge(StageStats.from_dict(record["stats"]))
        if stats is not None:
            total.merge(stats)
        columns = merge_columns([record.get("columns", {}) for record in records])
        manifest = Manifest(
            self.stage, json_config(self.config), shards, columns, inputs=inputs or [], schema_drift=schema_drift or {}
        )
        self.publish(manifest.to_dict(), total, rejects)
        return manifest

    def publish(
        self, marker: dict[str, Any], stats: StageStats | None = None, rejects: list[ShardInfo] | None = None
    ) -> None:
        """Check the accounting, write rejects and stats, then the marker (last), and clear scratch.

        ``marker`` must carry ``stage`` and ``config`` (see :meth:`completed`); outputs that
        read no documents (a tokenizer) pass no ``stats``.
        """
        if marker.get("stage") != self.stage or marker.get("config") != json_config(self.config):
            raise ValueError(f"{self.stage}: a marker must record this run's stage and config")
        with self.output_errors():
            if stats is not None:
                stats.check()
                write_manifest(self.out / REJECTS_DIR, Manifest(self.stage, json_config(self.config), rejects or []))
                write_json_atomic(self.out / STATS_FILE, stats.to_dict())
            write_json_atomic(self.out / self.marker, marker)
        shutil.rmtree(self.out / WORK_DIR, ignore_errors=True)
        output_lock.release(self.progress_dir)


def explain_write_error(error: OSError, out: Path | None = None) -> OutputWriteError | None:
    """The one-line error (with the fix) for a write that failed on a full, read-only or failing disk.

    ``out``: the stage's output directory; without one (the pipeline's run record, an output written
    outside a stage run), the file itself is named. None when the error is something else.
    """
    fix = _WRITE_FIXES.get(error.errno or 0)
    if fix is None or isinstance(error, CorpusmillError):
        return None
    reason = os.strerror(error.errno)
    if out is None:  # the path alone does not say read or write: name the file and the fix
        if error.errno == errno.EACCES or not error.filename:
            return None
        return OutputWriteError(f"{os.fsdecode(error.filename)}: {reason}; {fix}, then run the same command again")
    if error.errno in _AMBIGUOUS and not _under(error.filename, out):
        return None
    where = f" ({error.filename})" if error.filename else ""
    return OutputWriteError(f"cannot write to {out}: {reason}{where}; {fix}, then run the same command again to resume")


def shard_units(dataset: Dataset, prefix: str = "s", **extra: Any) -> list[dict[str, Any]]:
    """One unit per shard of ``dataset``: the most common plan of a phase."""
    return [
        {"unit_id": f"{prefix}{index:05d}", "index": index, "shard": shard.name, **extra}
        for index, shard in enumerate(dataset.shards)
    ]


def _rebase(shard: ShardInfo, subdir: str) -> ShardInfo:
    """Reject shards are recorded relative to the stage root; the rejects manifest wants them relative to rejects/."""
    return replace(shard, name=str(Path(shard.name).relative_to(subdir)))


def _has_content(directory: Path) -> bool:
    """Anything but an (interrupted) lock of ours: a folder holding only ``_progress/lock`` is still empty."""
    ours = {output_lock.LOCK_FILE, output_lock.OWNER_FILE}
    for child in directory.iterdir():
        if child.name != PROGRESS_DIR or not child.is_dir() or any(c.name not in ours for c in child.iterdir()):
            return True
    return False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _under(filename: Any, directory: Path) -> bool:
    if not filename:
        return False
    resolved = Path(os.fsdecode(filename)).resolve()
    return resolved == directory.resolve() or directory.resolve() in resolved.parents


@dataclass(frozen=True)
class _UnitTask:
    """Runs one unit on a worker: clear its leftovers, run it, then record completion."""

    run: StageRun
    phase: str
    unit_fn: UnitFn

    def __call__(self, unit: dict[str, Any]) -> dict[str, Any]:
        unit_id = unit["unit_id"]
        work = self.run.work_dir(self.phase)
        with self.run.output_errors():
            self.run.check_owner()
            out = self.run.out
            for directory in (out / SHARDS_DIR, out / REJECTS_DIR, work, work / SHARDS_DIR, work / REJECTS_DIR):
                for leftover in [*directory.glob(f"{unit_id}-*"), *directory.glob(f"{unit_id}.*")]:
                    leftover.unlink()
            record = self.unit_fn(unit, self.run)
            self.run.check_owner()
            write_json_atomic(self.run.out / PROGRESS_DIR / self.phase / f"{unit_id}.json", record)
        return record
