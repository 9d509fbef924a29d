"""Ray integration: start or join a cluster, and run a stage's units through Ray Data.

:class:`RayExecutor` is the production implementation of the stages' executor protocol
(``corpusmill.curation.executor.Executor``). A unit is a small JSON-able dict (one input
shard, one hash partition, ...). Units become the rows of a Ray Data dataset, one block
each, and are mapped by a plain function; Ray does the scheduling, retries of lost
workers and back-pressure.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import pickle
import shutil
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from corpusmill.curation.executor import Unit, UnitFn
from corpusmill.curation.progress import Progress, SilentProgress


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> str | None:
    """Start an embedded Ray, or connect to ``address`` / ``RAY_ADDRESS``; idempotent.

    Returns what it did (for the person running the command), or None when Ray was
    already up. When joining an existing cluster the driver ships its own copy of
    corpusmill to the workers, so a cluster needs only the third-party dependencies; a
    driver that is itself a job submitted by ``corpusmill submit`` already has its copy
    in the job's runtime environment, and Ray refuses to be given it twice.
    """
    import ray

    if ray.is_initialized():
        return None
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        runtime_env = None if _job_ships_corpusmill() else {"py_modules": [str(staged_package())]}
        ray.init(address=address, runtime_env=runtime_env, logging_level=logging.WARNING)
        started = f"ray: joined the cluster at {address}"
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING)
        cpus = int(ray.cluster_resources().get("CPU", 0))
        started = f"ray: started an embedded Ray with {cpus} CPUs"
    _quiet_ray_data()
    return started


def _job_ships_corpusmill() -> bool:
    """Whether this driver runs inside a Ray job whose runtime environment already carries py_modules."""
    from ray._private.runtime_env.constants import RAY_JOB_CONFIG_JSON_ENV_VAR

    config = os.environ.get(RAY_JOB_CONFIG_JSON_ENV_VAR)
    return bool(config and json.loads(config).get("runtime_env", {}).get("py_modules"))


_SUBPACKAGES = ("curation", "pipelines", "tokenizer", "trainer")


def staged_package() -> Path:
    """A copy of the installed ``corpusmill`` package alone, for Ray to ship to a cluster's workers.

    ``corpusmill`` maps onto the repository root in a development install, so shipping
    its directory would ship the whole checkout; this copies just its sub-packages.
    """
    staging = Path(tempfile.mkdtemp(prefix="corpusmill-ray-")) / "corpusmill"
    for name in _SUBPACKAGES:
        source = Path(importlib.import_module(f"corpusmill.{name}").__path__[0])
        shutil.copytree(source, staging / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return staging


def _quiet_ray_data() -> None:
    from ray.data import DataContext

    logging.getLogger("ray.data").setLevel(logging.WARNING)
    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    # A unit may legitimately run for an hour without output (`lm train` on 1 GB, one model);
    # Ray Data's default gives up after 30 minutes without a finished block.
    context.execution_no_progress_timeout_s = -1


def _pack_error(error: Exception) -> bytes:
    trace = traceback.format_exc()
    try:
        return pickle.dumps((error, trace))
    except Exception:
        return pickle.dumps((RuntimeError(f"{type(error).__name__}: {error}"), trace))


def _unpack_error(packed: bytes) -> Exception:
    error, trace = pickle.loads(packed)
    error.add_note(f"(raised in a Ray worker)\n{trace}")
    return error


class RayExecutor:
    """The stages' executor on Ray: an embedded local Ray unless ``address`` (or ``$RAY_ADDRESS``) names a cluster.

    Ray starts when a stage first maps units, so commands that fail early or find their
    work already done never pay its start-up, and it starts once however many stages
    (a pipeline's steps) share the executor. :meth:`close` shuts down what it started.
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None, progress: Progress | None = None):
        self.address = address
        self.num_cpus = num_cpus
        self.progress = progress or SilentProgress()
        self.started = False

    def map(self, units: Sequence[Unit], fn: UnitFn, *, label: str, num_cpus: float = 1.0) -> list[dict[str, Any]]:
        if not units:
            return []
        started = ensure_ray(self.address, self.num_cpus)
        if started is not None:
            self.started = True
            self.progress.note(started)
        return run_tasks(units, fn, label=label, num_cpus=num_cpus, progress=self.progress)

    def close(self) -> None:
        """Shut down the Ray this executor started (an embedded one, or its connection to a cluster)."""
        if self.started:
            import ray

            ray.shutdown()
            self.started = False


def run_tasks(
    units: Sequence[Unit], fn: UnitFn, *, label: str, num_cpus: float = 1.0, progress: Progress | None = None
) -> list[dict[str, Any]]:
    """Map ``fn`` over ``units`` with Ray Data (already initialised); return the results in unit order."""
    import ray

    progress = progress or SilentProgress()

    def apply(row: dict[str, Any]) -> dict[str, Any]:
        # JSON keeps Ray Data from inferring (and unifying) Arrow schemas of free-form dicts.
        try:
            return {"index": row["index"], "result": json.dumps(fn(json.loads(row["unit"]))), "error": b""}
        except Exception as error:  # re-raised on the driver as itself, not as Ray's wrapper
            return {"index": row["index"], "result": "", "error": _pack_error(error)}

    rows = [{"index": i, "unit": json.dumps(unit)} for i, unit in enumerate(units)]
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map(apply, num_cpus=num_cpus)
    results: list[dict[str, Any] | None] = [None] * len(rows)
    for row in dataset.iter_rows():
        if row["error"]:
            raise _unpack_error(row["error"])
        result = json.loads(row["result"])
        results[row["index"]] = result
        progress.unit_finished(label, result)
    return [result for result in results if result is not None]
