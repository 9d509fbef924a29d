"""Fault injection: every stage of the demo pipeline killed, starved of disk and raced, then re-run.

Why (issue 15): "re-runs resume" is only worth something if it holds at any moment a job can
die. For each stage this runs the stage undisturbed once (the reference), then, per case, into a
fresh output root holding hard links of that stage's inputs: injects one fault at a seeded random
point, re-runs the same command until it completes, and compares the output with the reference.

    .venv/bin/python -m benchmarks.faults --work /work/bench/faults/harness --per-kind 5 [--seed 0]

Fault kinds (``KINDS``):

- ``driver``: SIGKILL of the stage's driver process at a random time in its reference duration.
- ``group``: SIGKILL of the driver's whole process group (its subprocesses, e.g. lmplz, too).
- ``enospc`` / ``eio``: the N-th write event of the run (N uniform over the reference run's count)
  raises ``OSError(ENOSPC)`` / ``OSError(EIO)``. Write events are the two places every stage's
  bytes reach the disk: ``os.replace`` (the commit of every atomic file) and
  ``pyarrow.parquet.ParquetWriter.write_table`` (shard bodies). The hook lives in this file's
  driver wrapper (:func:`serial_main`), not in corpusmill.
- ``concurrent``: a second, identical run into the same output started at a random time while
  the first runs; one of them must be refused (or find the output complete), never both write.
- ``worker``: SIGKILL of a busy Ray worker process, a random time after the first task started
  (the CLI's own RayExecutor and embedded Ray).

Every case runs the real CLI (``corpusmill run pipelines/nemotron4.yaml --profile demo --only STEP``), forked from a
process that imported it once (:class:`Zygote`). All kinds but ``worker`` run the stage's units in
the driver process (a SerialExecutor in place of the RayExecutor): on a shared 2-core machine an
embedded Ray costs a minute to start, which would allow a handful of faults instead of hundreds.
The completion records, locks and atomic writes under test are the same for both executors;
``worker`` covers what only Ray adds, and also checks that Ray's output equals the serial reference.

"Identical" compares every output file's bytes (the files ``benchmarks.demo_checksums`` compares:
manifests, stats, configs and progress records hold run-specific paths and times and are left
out) after replacing the case's output root by the reference's in files that name it. Documents
lost counts ids present in the reference's Parquet files and missing from the case's.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_PIPELINE = REPO_ROOT / "pipelines" / "nemotron4.yaml"
DEMO_PROFILE = "demo"
FAULT_ENV = "CORPUSMILL_FAULT_WRITE"
# Set on a worker-kill case's driver: it keeps its embedded Ray, whose processes inherit the value.
RAY_MARKER_ENV = "CORPUSMILL_FAULT_RAY"
KINDS = ("driver", "group", "enospc", "eio", "concurrent", "worker")
SERIAL_KINDS = KINDS[:-1]
# The stages a kill is tried on but whose output is a model: kills only (lm train, tokenizer train).
KILL_ONLY_STAGES = ("lm train", "tokenizer train")
SKIPPED_STAGES = ("train",)  # the 36-step training run: trainer/ has its own resume tests
MAX_RERUNS = 3
WORKER_WINDOW_S = 2.0
# Ray's own processes titled ray::NAME that run no task: idle workers, the node's agents (whose death
# takes the raylet down) and Ray Data's bookkeeping actors.
RAY_NOT_TASKS = frozenset(
    {
        "ray::IDLE",
        "ray::DashboardAgent",
        "ray::RuntimeEnvAgent",
        "ray::_StatsActor",
        "ray::_AutoscalingCoordinatorActor",
        "ray::_UsageCollectionActor",
    }
)
RUN_TIMEOUT_S = 1800
REFERENCE = "reference"  # the undisturbed run's root under --work
SKIPPED_NAMES = {"manifest.json", "tokenized.json", "stats.json", "card.json", "config.json", "pipeline_run.json"}
SKIPPED_DIRS = {"_progress", "_work"}


# --- the driver wrapper: a SerialExecutor for the CLI, and the write-fault hook -------------------------------


def install_write_fault(spec: str) -> Callable[[], int]:
    """``COUNT:FILE`` counts write events (FILE is written by :func:`serial_main`); ``ENOSPC:N`` / ``EIO:N``
    fails the N-th. Returns the count so far."""
    import pyarrow.parquet as pq

    mode, argument = spec.split(":", 1)
    counter = itertools.count(1)
    seen = {"n": 0}
    code = None if mode == "COUNT" else getattr(errno, mode)
    target = None if mode == "COUNT" else int(argument)

    def event(path: object) -> None:
        seen["n"] = next(counter)
        if seen["n"] == target:
            raise OSError(code, os.strerror(code), str(path))

    real_replace, real_write_table = os.replace, pq.ParquetWriter.write_table

    def replace(source: Any, destination: Any, **kwargs: Any) -> None:
        event(destination)
        real_replace(source, destination, **kwargs)

    def write_table(self: pq.ParquetWriter, table: Any, *args: Any, **kwargs: Any) -> None:
        event(getattr(self, "where", "parquet"))
        real_write_table(self, table, *args, **kwargs)

    os.replace = replace  # type: ignore[assignment]
    pq.ParquetWriter.write_table = write_table  # type: ignore[method-assign]
    return lambda: seen["n"]


def serial_main(argv: Sequence[str]) -> int:
    """``corpusmill ARGV`` with units run in this process (see the module docstring), faults per FAULT_ENV."""
    from corpusmill.curation.executor import SerialExecutor
    from corpusmill.pipelines import execution
    from corpusmill.pipelines.cli import main

    class InProcess(SerialExecutor):
        def __init__(
            self, address: object = None, num_cpus: object = None, progress: Any = None, **_policy: object
        ) -> None:
            super().__init__(progress)

        def close(self) -> None:
            pass

    if not os.environ.get(RAY_MARKER_ENV):  # worker kills keep the embedded Ray
        execution.RayExecutor = InProcess  # type: ignore[misc,assignment]
    spec = os.environ.get(FAULT_ENV, "")
    count = install_write_fault(spec) if spec else None
    code = main(list(argv))
    if count is not None and spec.startswith("COUNT:"):
        Path(spec.split(":", 1)[1]).write_text(str(count()))
    return code


# --- outputs: what must be identical, and what was lost ----------------------------------------------------------


def output_files(root: Path) -> dict[str, Path]:
    return {
        str(path.relative_to(root)): path
        for path in sorted(root.rglob("*"))
        if path.is_file()
        and path.name not in SKIPPED_NAMES
        and not SKIPPED_DIRS & set(path.relative_to(root).parts)
        and ".tmp-" not in path.name
    }


def differences(reference: Path, case: Path, ref_root: Path, case_root: Path) -> list[str]:
    """Files missing, extra or different in ``case`` (case root's path replaced by the reference's)."""
    ref_files, case_files = output_files(reference), output_files(case)
    found = [f"missing {name}" for name in ref_files.keys() - case_files.keys()]
    found += [f"extra {name}" for name in case_files.keys() - ref_files.keys()]
    for name in sorted(ref_files.keys() & case_files.keys()):
        ours = case_files[name].read_bytes().replace(str(case_root).encode(), str(ref_root).encode())
        if ours != ref_files[name].read_bytes():
            found.append(f"differs {name}")
    return sorted(found)


def document_ids(root: Path) -> set[tuple[str, str]]:
    import pyarrow.parquet as pq

    ids = set()
    for name, path in output_files(root).items():
        if path.suffix == ".parquet" and "id" in pq.read_schema(path).names:
            ids |= {(name, str(value)) for value in pq.read_table(path, columns=["id"])["id"].to_pylist()}
    return ids


# --- running steps ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    number: int
    name: str
    stage: str
    out: str  # relative to the run root
    reads: tuple[str, ...]  # relative to the run root (inputs outside it are left out)


@dataclass
class Reference:
    step: Step
    wall_s: float
    write_events: int


def step_command(root: Path, step: Step, inputs: list[str]) -> list[str]:
    words = ["run", str(DEMO_PIPELINE), "--profile", DEMO_PROFILE, "--out", str(root), "--only", str(step.number)]
    words += ["--set", f"inputs={json.dumps(inputs)}"]
    return [sys.executable, "-m", "benchmarks.faults", "serial", *words]


class Forked:
    """A run forked from the :class:`Zygote`: a real process (own session) that ``subprocess`` did not start."""

    def __init__(self, zygote: Zygote, pid: int) -> None:
        self.zygote, self.pid, self.returncode = zygote, pid, None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.zygote.request({"wait": self.pid, "timeout": 0})["code"]
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            answer = self.zygote.request({"wait": self.pid, "timeout": RUN_TIMEOUT_S if timeout is None else timeout})
            if answer["code"] is None:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            self.returncode = answer["code"]
        return self.returncode


class Zygote:
    """One process that imports corpusmill once and forks every serial run from there.

    Why: the CLI imports torch and every stage at start-up (about 6 CPU-s, a minute of wall time on
    this shared machine); forking from a process that already did skips it, so hundreds of faults fit.
    A forked child calls :func:`serial_main` exactly as a fresh ``benchmarks.faults serial`` would.
    """

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.faults", "zygote"],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def start(self, argv: list[str], log: Path, env: dict[str, str]) -> Forked:
        return Forked(self, self.request({"argv": argv, "log": str(log), "env": env})["pid"])

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


def zygote_main() -> None:
    """Preload, then fork one child per request line; answer its pid, or (for waits) its exit status."""
    from corpusmill.pipelines import cli

    cli.commands()  # imports every stage module, hence torch, pyarrow, datatrove

    for line in sys.stdin:
        message = json.loads(line)
        if "ping" in message:
            print(json.dumps({"ready": True}), flush=True)
            continue
        if "wait" in message:
            print(json.dumps({"code": _wait(message["wait"], message["timeout"])}), flush=True)
            continue
        pid = os.fork()
        if pid == 0:
            _child(message["argv"], message["log"], message["env"])
        print(json.dumps({"pid": pid}), flush=True)


def _wait(pid: int, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def _child(argv: list[str], log: str, env: dict[str, str]) -> None:
    os.setsid()
    descriptor = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.environ.update(env)
    code = 1
    try:
        code = serial_main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # noqa: BLE001 - the child must reach os._exit, never return into the zygote's loop
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


_ZYGOTE: Zygote | None = None


def zygote() -> Zygote:
    """The zygote, started on first use (its start-up must not count in a step's reference time)."""
    global _ZYGOTE
    if _ZYGOTE is None:
        _ZYGOTE = Zygote()
        _ZYGOTE.request({"ping": True})  # answered once everything is imported
    return _ZYGOTE


def start(command: list[str], log: Path, env: dict[str, str] | None = None) -> Any:
    """Start ``command`` in a new session; serial runs fork from the zygote (see :class:`Zygote`)."""
    if command[1:4] == ["-m", "benchmarks.faults", "serial"]:
        return zygote().start(command[4:], log, env or {})
    with log.open("ab") as handle:
        return subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )


def finish(process: Any) -> int:
    try:
        return process.wait(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()


def reap_group(pgid: int) -> None:
    """Whatever a killed driver left behind (orphaned subprocesses, a Ray) goes too, once its case is decided."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def plan_steps(root: Path, inputs: list[str]) -> list[Step]:
    from corpusmill.pipelines.pipeline import load_pipeline, plan_pipeline

    plan = plan_pipeline(
        load_pipeline(DEMO_PIPELINE),
        out=str(root),
        profile=DEMO_PROFILE,
        variables={"inputs": inputs},
        check_paths=False,
    )
    steps = []
    for item in plan.steps:
        if item.command.name in SKIPPED_STAGES:
            continue
        reads = tuple(str(Path(path).relative_to(root)) for _, path in item.reads if Path(path).is_relative_to(root))
        steps.append(Step(item.step.number, item.name, item.command.name, str(Path(item.out).relative_to(root)), reads))
    return steps


def build_reference(work: Path, inputs: list[str], log: Path) -> list[Reference]:
    """Every step once, undisturbed, in order: the outputs cases are compared with, timed and counted."""
    root = work / REFERENCE
    references = []
    zygote()
    for step in plan_steps(root, inputs):
        counted = work / f"count-{step.number}"
        began = time.monotonic()
        code = finish(start(step_command(root, step, inputs), log, {FAULT_ENV: f"COUNT:{counted}"}))
        if code != 0:
            raise RuntimeError(f"reference step {step.name} exited {code}; see {log}")
        references.append(Reference(step, time.monotonic() - began, int(counted.read_text())))
    return references


def prepare_case(work: Path, name: str, step: Step) -> Path:
    """A fresh run root holding hard links of the step's inputs (stages never modify their inputs).

    Its path is as long as the reference's, so outputs that record their own path (a SentencePiece
    model names its training files, in length-prefixed fields) compare equal once the root is swapped.
    """
    root = work / f"c{hashlib.sha1(name.encode()).hexdigest()[: len(REFERENCE) - 1]}"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for read in step.reads:
        subprocess.run(["cp", "-al", str(work / REFERENCE / read), str(root / read)], check=True)
    return root


# --- one fault case ----------------------------------------------------------------------------------------------


@dataclass
class CaseResult:
    step: str
    stage: str
    kind: str
    seed: int
    point: str  # when the fault was injected
    faulted_exit: int | None  # exit status of the faulted run (None: killed)
    outcome: str  # what the faulted attempt did, in words
    reruns: int
    identical: bool
    documents_lost: int
    differences: list[str]
    one_line_error: bool | None  # enospc/eio/concurrent: was the refusal one line, no traceback?


def _ray_workers(marker: str) -> list[tuple[int, str]]:
    """Workers of this case's embedded Ray busy with a task (titled ray::NAME, not ray::IDLE).

    Ray workers run in process groups of their own under the raylet; they are told from other Ray
    instances on the machine by the marker variable they inherit from the case's driver.
    """
    import psutil

    busy = []
    for process in psutil.process_iter(["pid", "cmdline"]):  # (pid, title)
        title = " ".join(process.info["cmdline"] or [])
        if not title.startswith("ray::") or title.split()[0].split(".")[0] in RAY_NOT_TASKS:
            continue
        with contextlib.suppress(psutil.Error):
            if process.environ().get(RAY_MARKER_ENV) == marker:
                busy.append((process.pid, title.split()[0]))
    return busy


def _marked(marker: str) -> list[Any]:
    """Every process left of a worker-kill case's embedded Ray (found by the marker it inherited)."""
    import psutil

    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.environ().get(RAY_MARKER_ENV) == marker:
                found.append(process)
    return found


def _kill_all(processes: list[Any]) -> None:
    import psutil

    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()


def _one_line(log: Path, offset: int) -> bool:
    text = log.read_bytes()[offset:].decode(errors="replace")
    return "Traceback" not in text and "corpusmill: error:" in text


def run_case(work: Path, ref: Reference, inputs: list[str], kind: str, seed: int) -> CaseResult:
    """Inject one ``kind`` fault into ``ref.step`` (seeded), re-run until complete, compare with the reference."""
    rng = random.Random(f"{ref.step.name}/{kind}/{seed}")
    name = f"{ref.step.name}-{kind}-{seed}"
    root = prepare_case(work, name, ref.step)
    log = work / "cases" / f"{name}.log"
    log.parent.mkdir(exist_ok=True)
    log.write_bytes(b"")
    command = step_command(root, ref.step, inputs)
    marker = f"{os.getpid()}-{name}"
    ray_env = {RAY_MARKER_ENV: marker} if kind == "worker" else {}
    one_line = None
    leftovers: list[int] = []
    if kind in ("driver", "group", "worker"):
        # Ray tasks of this small corpus last a second or two: a worker dies within that window.
        delay = (
            rng.uniform(0.0, min(WORKER_WINDOW_S, ref.wall_s))
            if kind == "worker"
            else rng.uniform(0.05, 1.0) * ref.wall_s
        )
        point = f"{delay:.1f} s after the first task" if kind == "worker" else f"{delay:.1f} s of {ref.wall_s:.1f} s"
        process = start(command, log, ray_env)
        if kind == "worker":
            outcome = _kill_a_worker(process, delay, rng, marker)
        else:
            try:
                process.wait(timeout=delay)
                outcome = "finished before the kill"
            except subprocess.TimeoutExpired:
                if kind == "driver":
                    os.kill(process.pid, signal.SIGKILL)
                else:
                    os.killpg(process.pid, signal.SIGKILL)
                outcome = "killed"
        faulted = process.wait()
        leftovers.append(process.pid)
    elif kind in ("enospc", "eio"):
        target = rng.randint(1, max(1, ref.write_events))
        point = f"write event {target} of {ref.write_events}"
        offset = log.stat().st_size
        faulted = finish(start(command, log, {FAULT_ENV: f"{kind.upper()}:{target}"}))
        one_line = faulted == 0 or _one_line(log, offset)
        outcome = "completed" if faulted == 0 else "failed"
    else:  # concurrent
        delay = rng.uniform(0.0, 1.0) * ref.wall_s
        point = f"second run at {delay:.1f} s of {ref.wall_s:.1f} s"
        first_log, second_log = log.with_suffix(".first.log"), log.with_suffix(".second.log")
        first = start(command, first_log)
        time.sleep(delay)
        second = start(command, second_log)
        codes = (finish(first), finish(second))
        texts = [p.read_text(errors="replace") for p in (first_log, second_log)]
        refused = ["being written by another corpusmill run" in t or "taken over by another" in t for t in texts]
        complete = ["already complete" in t for t in texts]
        outcome = f"exits {codes}, refused {refused}, found complete {complete}"
        one_line = all("Traceback" not in t for t in texts)
        faulted = max(codes)
        leftovers += [first.pid, second.pid]
    reruns = 0
    final = faulted if kind != "concurrent" else (0 if 0 in codes and not all(refused) else 1)
    while final != 0 and reruns < MAX_RERUNS:
        reruns += 1
        final = finish(start(command, log, ray_env))
    for pgid in leftovers:
        reap_group(pgid)
    if kind == "worker":
        _kill_all(_marked(marker))
    case_out, ref_out = root / ref.step.out, work / REFERENCE / ref.step.out
    found = differences(ref_out, case_out, work / REFERENCE, root) if final == 0 else ["re-run did not complete"]
    lost = len(document_ids(ref_out) - document_ids(case_out)) if case_out.exists() else len(document_ids(ref_out))
    result = CaseResult(
        ref.step.name, ref.step.stage, kind, seed, point, faulted, outcome, reruns, not found, lost, found, one_line
    )
    if not found:
        shutil.rmtree(root)
    return result


def _kill_a_worker(process: Any, delay: float, rng: random.Random, marker: str) -> str:
    """SIGKILL one busy Ray worker of the run ``delay`` seconds after the first task started.

    The delay counts from the first busy worker, not from the start, since joining the cluster
    takes longer than the whole serial reference run; when none is busy then, the next one is taken.
    """
    started = None
    while process.poll() is None:
        workers = _ray_workers(marker)
        if workers and started is None:
            started = time.monotonic()
        if workers and time.monotonic() - started >= delay:
            victim, title = rng.choice(sorted(workers))
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                continue
            return f"killed worker {victim} ({title}) at {time.monotonic() - started:.1f} s into the tasks"
        time.sleep(0.1)
    return "finished before the kill"


# --- the benchmark -----------------------------------------------------------------------------------------------


def small_corpus(work: Path, docs_per_kind: int) -> list[str]:
    """The demo's raw inputs from this machine, ``docs_per_kind`` documents of each kind: several files, shards."""
    from corpusmill.pipelines.demo_corpus import assemble_demo_inputs, read_demo_inputs

    raw = work / "raw"
    corpus = read_demo_inputs(raw) if (raw / "inputs.json").exists() else None
    if corpus is None:
        corpus = assemble_demo_inputs(raw, max_docs_per_kind=docs_per_kind)
    return [f"{path}={source}" for path, source in corpus.ingest_inputs]


def kinds_for(stage: str, kinds: Sequence[str]) -> list[str]:
    return [k for k in kinds if k in ("driver", "group")] if stage in KILL_ONLY_STAGES else list(kinds)


def summarize(results: list[CaseResult]) -> str:
    cells: dict[tuple[str, str], list[CaseResult]] = defaultdict(list)
    for result in results:
        cells[(result.stage, result.kind)].append(result)
    stages = list(dict.fromkeys(r.stage for r in results))
    kinds = [k for k in KINDS if any(r.kind == k for r in results)]
    lines = ["| stage | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
    for stage in stages:
        row = []
        for kind in kinds:
            cases = cells.get((stage, kind), [])
            if not cases:
                row.append("-")
                continue
            identical = sum(c.identical for c in cases)
            hit = sum(c.outcome not in ("finished before the kill", "completed") for c in cases)
            row.append(f"{identical}/{len(cases)} identical, {hit} hit, {sum(c.documents_lost for c in cases)} lost")
        lines.append(f"| {stage} | " + " | ".join(row) + " |")
    total = Counter(r.identical for r in results)
    lines.append("")
    lines.append(
        f"{len(results)} cases, {total[True]} identical after re-run, "
        f"{sum(r.documents_lost for r in results)} documents lost, "
        f"{sum(r.one_line_error is False for r in results)} refusals that were not one line"
    )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--per-kind", type=int, default=5, help="cases per stage and fault kind")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--stages", nargs="+", default=None, help="stage names (default: all)")
    parser.add_argument("--docs-per-kind", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default="faults", help="WORK/NAME.jsonl gets the cases, WORK/NAME.md the table")
    args = parser.parse_args(argv)
    work = args.work.absolute()
    work.mkdir(parents=True, exist_ok=True)
    inputs = small_corpus(work, args.docs_per_kind)
    results_path = work / f"{args.results}.jsonl"
    references = load_or_build_reference(work, inputs)
    done = set()
    if results_path.exists():
        done = {(r["step"], r["kind"], r["seed"]) for r in map(json.loads, results_path.open())}
    for index in range(args.per_kind):
        for ref in references:
            if args.stages and ref.step.stage not in args.stages:
                continue
            for kind in kinds_for(ref.step.stage, args.kinds):
                if (ref.step.name, kind, args.seed + index) in done:
                    continue
                result = run_case(work, ref, inputs, kind, args.seed + index)
                with results_path.open("a") as handle:
                    handle.write(json.dumps(asdict(result)) + "\n")
                print(json.dumps(asdict(result)), flush=True)
    results = [CaseResult(**json.loads(line)) for line in results_path.open()] if results_path.exists() else []
    (work / f"{args.results}.md").write_text(summarize(results))
    print(summarize(results))


def load_or_build_reference(work: Path, inputs: list[str]) -> list[Reference]:
    record = work / "reference.json"
    if record.exists():
        return [
            Reference(Step(**{**r["step"], "reads": tuple(r["step"]["reads"])}), r["wall_s"], r["write_events"])
            for r in json.loads(record.read_text())
        ]
    references = build_reference(work, inputs, work / "reference.log")
    record.write_text(json.dumps([asdict(r) for r in references], indent=1) + "\n")
    return references


if __name__ == "__main__":
    if sys.argv[1:2] == ["serial"]:
        sys.exit(serial_main(sys.argv[2:]))
    if sys.argv[1:2] == ["zygote"]:
        zygote_main()
        sys.exit(0)
    main()
