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

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corpusmill.curation.atomic import read_json, write_json_atomic
from corpusmill.curation.dataset import (
    MANIFEST_FILE,
    REJECTS_DIR,
    SHARDS_DIR,
    STATS_FILE,
    Dataset,
    Manifest,
    ShardInfo,
    write_manifest,
)
from corpusmill.curation.errors import CorpusmillError
from corpusmill.curation.executor import Executor
from corpusmill.curation.stats import StageStats

PROGRESS_DIR = "_progress"
WORK_DIR = "_work"
CONFIG_RECORD = "config.json"

UnitFn = Callable[[dict[str, Any], "StageRun"], dict[str, Any]]


class StageConfigMismatch(CorpusmillError, RuntimeError):
    """The output directory holds work done with different settings."""


def json_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config as it reads back from JSON (tuples become lists, paths strings): what markers compare."""
    return json.loads(json.dumps(config, default=str))


@dataclass(frozen=True)
class StageRun:
    """Handle on one stage's output directory; picklable, so units get it on workers.

    ``marker`` is the file written last, whose presence means the stage finished here.
    """

    out: Path
    stage: str
    config: dict[str, Any]
    marker: str = MANIFEST_FILE

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
        if finished.get("stage") == self.stage and finished.get("config") == json_config(self.config):
            return finished
        if "stage" not in finished:
            raise StageConfigMismatch(
                f"{path} was written by an older corpusmill and records no settings; pass --overwrite to redo it"
            )
        raise StageConfigMismatch(
            f"{self.out} already holds a finished {finished.get('stage')!r} output made with other settings; "
            "choose another --out or pass --overwrite"
        )

    def completed_manifest(self) -> Manifest | None:
        """The dataset manifest if this exact stage and config already finished here."""
        finished = self.completed()
        return None if finished is None else Manifest.from_dict(finished)

    def claim(self, executor: Executor, overwrite: bool = False) -> dict[str, Any] | None:
        """Start (or resume) this run; return the marker instead when it already finished.

        The one entry every stage goes through: an identical finished run is reported and
        reused, a run with other settings is refused, and the directory is claimed.
        """
        if not overwrite and (finished := self.completed()) is not None:
            executor.progress.note(
                f"[{self.stage}] already complete in {self.out}; nothing to do (pass --overwrite to redo)"
            )
            return finished
        self.prepare(overwrite)
        return None

    def prepare(self, overwrite: bool = False) -> None:
        """Claim the directory for this config; refuse to mix runs with different settings."""
        if overwrite and self.out.exists():
            shutil.rmtree(self.out)
        record = self.out / PROGRESS_DIR / CONFIG_RECORD
        if record.exists():
            previous = read_json(record)
            if previous.get("config_hash") != self.config_hash:
                raise StageConfigMismatch(
                    f"{self.out} holds a partial {previous.get('stage')!r} run with other settings; "
                    "re-run with the same settings to resume, or pass --overwrite to start over"
                )
            return
        if self.out.exists() and any(self.out.iterdir()):
            raise StageConfigMismatch(f"{self.out} is not empty and not a corpusmill stage output; choose another --out")
        write_json_atomic(record, {"stage": self.stage, "config_hash": self.config_hash, "config": self.config})

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

    def finish(self, records: list[dict[str, Any]], stats: StageStats | None = None) -> Manifest:
        """Merge unit records, check the accounting, then publish stats, rejects and the manifest.

        A record may carry ``shards``, ``rejects`` (ShardInfo dicts), ``columns``
        and ``stats``; ``stats`` adds counters that no single unit owns.
        """
        total = StageStats(self.stage)
        shards, rejects, columns = [], [], {}
        for record in records:
            shards += [ShardInfo(**s) for s in record.get("shards", [])]
            rejects += [_rebase(ShardInfo(**s), REJECTS_DIR) for s in record.get("rejects", [])]
            for name, dtype in record.get("columns", {}).items():
                columns.setdefault(name, dtype)
            if "stats" in record:
                total.merge(StageStats.from_dict(record["stats"]))
        if stats is not None:
            total.merge(stats)
        manifest = Manifest(self.stage, json_config(self.config), shards, columns)
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
        if stats is not None:
            stats.check()
            write_manifest(self.out / REJECTS_DIR, Manifest(self.stage, json_config(self.config), rejects or []))
            write_json_atomic(self.out / STATS_FILE, stats.to_dict())
        write_json_atomic(self.out / self.marker, marker)
        shutil.rmtree(self.out / WORK_DIR, ignore_errors=True)


def shard_units(dataset: Dataset, prefix: str = "s", **extra: Any) -> list[dict[str, Any]]:
    """One unit per shard of ``dataset``: the most common plan of a phase."""
    return [
        {"unit_id": f"{prefix}{index:05d}", "index": index, "shard": shard.name, **extra}
        for index, shard in enumerate(dataset.shards)
    ]


def _rebase(shard: ShardInfo, subdir: str) -> ShardInfo:
    """Reject shards are recorded relative to the stage root; the rejects manifest wants them relative to rejects/."""
    return ShardInfo(str(Path(shard.name).relative_to(subdir)), shard.rows, shard.file_bytes, shard.text_bytes)


@dataclass(frozen=True)
class _UnitTask:
    """Runs one unit on a worker: clear its leftovers, run it, then record completion."""

    run: StageRun
    phase: str
    unit_fn: UnitFn

    def __call__(self, unit: dict[str, Any]) -> dict[str, Any]:
        unit_id = unit["unit_id"]
        for directory in (self.run.out / SHARDS_DIR, self.run.out / REJECTS_DIR, self.run.work_dir(self.phase)):
            for leftover in [*directory.glob(f"{unit_id}-*"), *directory.glob(f"{unit_id}.*")]:
                leftover.unlink()
        record = self.unit_fn(unit, self.run)
        write_json_atomic(self.run.out / PROGRESS_DIR / self.phase / f"{unit_id}.json", record)
        return record
