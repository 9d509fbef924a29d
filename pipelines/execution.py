"""Ray integration: start or join a cluster, and run a stage's units as Ray tasks.

:class:`RayExecutor` is the production implementation of the stages' executor protocol
(``corpusmill.curation.executor.Executor``). A unit is a small JSON-able dict (one input
shard, one hash partition, ...); each becomes one Ray task running a plain function. Ray
does the scheduling, the CPU accounting and the retries of lost workers. Units exchange
only their small descriptors and result records with the driver (the data stays in
files), so plain tasks are all a stage needs: Ray Data's streaming machinery would add
two actors (its stats and autoscaling coordinators, a Python process each) to every
command and nothing to its result.

The embedded Ray is started lean, for one command on one machine: bound to loopback
only (with Ray's token authentication on), no dashboard, no API server and no autoscaler
monitor, no usage statistics, no metrics export or task-event reporting, no workers
prestarted ahead of the first task, and an object store sized for unit records rather
than 30 % of the machine's memory.

A phase of one unit has nothing to distribute, and starting the embedded Ray costs more
than a tiny input's whole work (docs/BENCHMARKS.md, "Ray fixed cost"): the CLI's executor
runs such a unit in its own process (``inline_single_unit``), with the same JSON round
trips as a Ray task, and starts Ray at the first phase with two or more units. A cluster
(``--ray-address`` / ``$RAY_ADDRESS``) or a Ray already running gets every unit, and
``--always-ray`` turns the shortcut off.
"""

from __future__ import annotations

import contextlib
import importlib
import ipaddress
import json
import logging
import os
import pickle
import shutil
import sys
import tempfile
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from corpusmill.curation.executor import Unit, UnitFn
from corpusmill.curation.progress import Progress, SilentProgress

LOOPBACK = "127.0.0.1"

# Only unit descriptors, result records and the pickled unit function pass through the
# object store (stages read and write their data as files), so a small store is plenty;
# Ray spills to disk beyond it. Ray's own minimum is 75 MiB.
EMBEDDED_OBJECT_STORE_BYTES = 128 * 2**20

# Ray system settings for the embedded instance: nothing collects what no one will look at.
EMBEDDED_SYSTEM_CONFIG: dict[str, Any] = {
    "enable_metrics_collection": False,  # no Prometheus metrics export from raylet and workers
    "task_events_report_interval_ms": 0,  # no task events for the (absent) dashboard's state API
    "enable_worker_prestart": False,  # workers start when tasks need them ...
    "prestart_worker_first_driver": False,  # ... not one per CPU when the driver connects
}

# Environment for the embedded start (inherited by every Ray process it spawns):
# RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 is Ray's single-machine mode, in which "this node's
# address" is the loopback address, so gcs_server, raylet, the agents and every worker bind
# to 127.0.0.1 instead of all interfaces; RAY_USAGE_STATS_ENABLED=0 keeps usage statistics off.
EMBEDDED_ENVIRONMENT = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


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
        # Ray would turn a loopback address into this machine's external one, where a head
        # started on loopback (README: a long-lived local head) does not listen.
        with _single_machine_mode() if _is_loopback(address) else contextlib.nullcontext():
            ray.init(address=address, runtime_env=runtime_env, logging_level=logging.WARNING)
        return f"ray: joined the cluster at {address}"
    start_embedded_ray(num_cpus)
    cpus = int(ray.cluster_resources().get("CPU", 0))
    return f"ray: started an embedded Ray with {cpus} CPUs (on {LOOPBACK} only)"


def _is_loopback(address: str) -> bool:
    """Whether a Ray address (``HOST:PORT``, ``ray://HOST:PORT``, ``[::1]:PORT``) names this machine's loopback."""
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def start_embedded_ray(num_cpus: int | None = None) -> None:
    """Start the lean, loopback-only Ray of one command (see the module docstring).

    Token authentication stays on: it is Ray's default for a local instance (an explicit
    ``RAY_AUTH_MODE`` is respected), and Ray's notice that it switched it on is not
    repeated to every command. Raises if Ray did not take the loopback address, rather
    than run a cluster reachable from the network.
    """
    import ray

    with _single_machine_mode(), _logger_level(_AUTH_NOTICE_LOGGER, logging.ERROR), _without_idle_head_daemons():
        ray.init(
            address="local",  # a new instance: never the head some `ray start` on this machine left for ray.init()
            num_cpus=num_cpus,
            _node_ip_address=LOOPBACK,
            include_dashboard=False,
            object_store_memory=EMBEDDED_OBJECT_STORE_BYTES,
            _system_config=EMBEDDED_SYSTEM_CONFIG,
            logging_level=logging.WARNING,
        )
    node_ip = ray.util.get_node_ip_address()
    if node_ip != LOOPBACK:
        ray.shutdown()
        raise RuntimeError(f"the embedded Ray took the address {node_ip}, not {LOOPBACK}: this Ray version no longer "
                           "honours RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (its single-machine mode), and corpusmill "
                           "does not start a Ray reachable from the network")  # fmt: skip


_AUTH_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"

# Head processes that an embedded, fixed-size, dashboard-less Ray starts but never uses:
# the API server (``dashboard.py``: with ``include_dashboard=False`` it loads only the
# usage-statistics module, and usage statistics are off) and the autoscaler monitor (a
# one-node instance has nothing to scale). ``ray.init`` has no switch for either; they
# cost about 120 MiB of PSS, 1.5 CPU-s and 2 s of start and stop per command
# (docs/BENCHMARKS.md, "Ray fixed cost"). The raylet, GCS, both agents and the log
# monitor (which forwards workers' output to the terminal) are kept.
_IDLE_HEAD_DAEMON_STARTERS = ("start_api_server", "start_monitor")


@contextlib.contextmanager
def _without_idle_head_daemons() -> Iterator[None]:
    """While ``ray.init`` starts its head node, make its :data:`_IDLE_HEAD_DAEMON_STARTERS` do nothing.

    A Ray version without these methods of its ``Node`` simply starts its daemons as before.
    """
    from ray._private.node import Node

    saved = {name: Node.__dict__[name] for name in _IDLE_HEAD_DAEMON_STARTERS if name in Node.__dict__}
    for name in saved:
        setattr(Node, name, _start_nothing)
    try:
        yield
    finally:
        for name, method in saved.items():
            setattr(Node, name, method)


def _start_nothing(_node: object, **_options: object) -> None:
    """Stands in for one of a head node's daemon starters."""


@contextlib.contextmanager
def _logger_level(name: str, level: int) -> Iterator[None]:
    logger = logging.getLogger(name)
    saved = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(saved)


@contextlib.contextmanager
def _single_machine_mode() -> Iterator[None]:
    """:data:`EMBEDDED_ENVIRONMENT` while Ray starts its processes, restored afterwards.

    This process read RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when it imported Ray, so Ray's
    constant is switched too; restoring both keeps a later connection to a real cluster
    from this process (``--ray-address``) resolving the node's real address.
    """
    from ray._private import ray_constants

    saved_environment = {name: os.environ.get(name) for name in EMBEDDED_ENVIRONMENT}
    saved_cluster_flag = ray_constants.ENABLE_RAY_CLUSTER
    os.environ.update(EMBEDDED_ENVIRONMENT)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_cluster_flag
        for name, value in saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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
    (a pipeline's steps) share the executor; its workers serve every phase and stage.
    With ``inline_single_unit`` (the CLI's default), a phase of one unit runs in this
    process while no Ray is running or named (module docstring). :meth:`close` shuts down
    what it started.
    """

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        progress: Progress | None = None,
        inline_single_unit: bool = False,
    ):
        self.address = address
        self.num_cpus = num_cpus
        self.progress = progress or SilentProgress()
        self.inline_single_unit = inline_single_unit
        self.started = False

    def map(self, units: Sequence[Unit], fn: UnitFn, *, label: str, num_cpus: float = 1.0) -> list[dict[str, Any]]:
        if not units:
            return []
        if len(units) == 1 and self.inline_single_unit and not self._ray_named_or_running():
            return [run_inline(units[0], fn, label=label, progress=self.progress)]
        started = ensure_ray(self.address, self.num_cpus)
        if started is not None:
            self.started = True
            self.progress.note(started)
        return run_tasks(units, fn, label=label, num_cpus=num_cpus, progress=self.progress)

    def _ray_named_or_running(self) -> bool:
        """A cluster to use, or a Ray already up in this process (checked without importing Ray)."""
        ray = sys.modules.get("ray")
        return bool(self.address or os.environ.get("RAY_ADDRESS") or (ray is not None and ray.is_initialized()))

    def close(self) -> None:
        """Shut down the Ray this executor started (an embedded one, or its connection to a cluster)."""
        if self.started:
            import ray

            ray.shutdown()
            self.started = False


def _run_unit(fn: UnitFn, unit: str) -> tuple[str, bytes]:
    """One unit in a Ray worker: its result as JSON, or its exception packed to be re-raised on the driver as itself."""
    # JSON both ways keeps a unit's inputs and results the plain data a record on disk holds.
    try:
        return json.dumps(fn(json.loads(unit))), b""
    except Exception as error:
        return "", _pack_error(error)


def run_inline(unit: Unit, fn: UnitFn, *, label: str, progress: Progress) -> dict[str, Any]:
    """One unit in this process, through the JSON round trips of a Ray task, so its result is the same data."""
    result = json.loads(json.dumps(fn(json.loads(json.dumps(unit)))))
    progress.unit_finished(label, result)
    return result


def run_tasks(
    units: Sequence[Unit], fn: UnitFn, *, label: str, num_cpus: float = 1.0, progress: Progress | None = None
) -> list[dict[str, Any]]:
    """Run ``fn`` on every unit as a Ray task (Ray already initialised); return the results in unit order.

    A task whose worker dies is retried until it completes, as Ray Data does for its
    tasks; an exception raised by ``fn`` is not retried but re-raised here, and the
    units still running are cancelled.
    """
    import ray

    progress = progress or SilentProgress()
    task = ray.remote(_run_unit).options(
        num_cpus=num_cpus, max_retries=-1, retry_exceptions=[ray.exceptions.RaySystemError]
    )
    fn_ref = ray.put(fn)  # pickled once, not once per unit
    index_of = {task.remote(fn_ref, json.dumps(unit)): index for index, unit in enumerate(units)}
    results: list[dict[str, Any] | None] = [None] * len(units)
    remaining = list(index_of)
    while remaining:
        (ready,), remaining = ray.wait(remaining, num_returns=1)
        result, error = ray.get(ready)
        if error:
            for ref in remaining:
                ray.cancel(ref)
            raise _unpack_error(error)
        results[index_of[ready]] = json.loads(result)
        progress.unit_finished(label, results[index_of[ready]])
    return [result for result in results if result is not None]
