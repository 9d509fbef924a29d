"""Ray's fixed cost per command: one `corpusmill ingest` of a 12-document input, before and after, in one run.

Why: on a tiny input a command's cost is almost all start-up (the CLI's imports, starting
and stopping the embedded Ray), and issue 16 sets goals for it: <= 2.5 s wall, <= 2 CPU-s
and <= 0.6 GB peak PSS. This measures, interleaved round by round:

- ``previous``: the same command from an earlier commit's tree (``--previous``, default
  ``main``), exported with ``git archive`` and put first on PYTHONPATH;
- ``current``: this checkout's command as a user runs it: its one unit runs in the CLI's
  process and Ray is not started (``RayExecutor(inline_single_unit=True)``);
- ``ray``: the same with ``--always-ray``: the lean embedded Ray starts and runs the unit;
- ``head``: this checkout's command against a long-lived local head started once on
  loopback (README: "A long-lived local head"), so start-up is paid once, not per command;
- ``imports``: ``corpusmill ingest --help``, the CLI's imports alone, without Ray, to show
  what of a command's cost is not Ray's.

CPU is whole-process-tree accounting: every run is a fresh cgroup (v1 ``cpuacct`` or v2
``cpu.stat``), which also counts Ray's daemons and workers that the command's own rusage
misses; for ``head`` the head's cgroup is counted too (what it spent while the command ran,
its workers included). Peak PSS sums every process of those cgroups, sampled every 0.2 s.

    .venv/bin/python benchmarks/ray_fixed_cost.py --rounds 3 --work /work/bench/raylean

The table goes to stdout and to WORK/ray_fixed_cost.md (copied into docs/BENCHMARKS.md by hand).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SAMPLE_INTERVAL_S = 0.2
DOCS = 12
# The README's long-lived local head, flag for flag (no dashboard, autoscaler monitor or log
# monitor; the embedded Ray's system settings).
LEAN_HEAD_FLAGS = ["--include-dashboard=false", "--disable-usage-stats", "--no-monitor",
                   "--include-log-monitor=false", f"--object-store-memory={256 * 2**20}",
                   '--system-config={"enable_metrics_collection": false, "task_events_report_interval_ms": 0}']  # fmt: skip
GOALS = {"wall_s": 2.5, "cpu_s": 2.0, "pss_gb": 0.6}


class Cgroup:
    """A fresh CPU-accounting cgroup (v1 cpuacct or v2) whose members, and their descendants, are all counted."""

    def __init__(self, name: str) -> None:
        for root, usage_file in (("/sys/fs/cgroup/cpuacct", "cpuacct.usage"), ("/sys/fs/cgroup/unified", "cpu.stat"),
                                 ("/sys/fs/cgroup", "cpu.stat")):  # fmt: skip
            path = Path(root) / name
            try:
                path.mkdir()
            except OSError:
                continue
            if (path / usage_file).exists():
                self.path, self.usage_file = path, usage_file
                return
            path.rmdir()
        raise SystemExit("no writable cgroup with CPU accounting under /sys/fs/cgroup (run as root, or give one)")

    def join(self) -> None:
        """Put the calling process in this cgroup (a child calls it between fork and exec)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def cpu_s(self) -> float:
        text = (self.path / self.usage_file).read_text()
        if self.usage_file == "cpuacct.usage":
            return int(text) / 1e9
        return int(dict(line.split() for line in text.splitlines())["usage_usec"]) / 1e6

    def pids(self) -> list[int]:
        return [int(pid) for pid in (self.path / "cgroup.procs").read_text().split()]

    def drain(self, timeout_s: float = 60.0) -> None:
        """Wait for the members to exit (Ray's daemons stop after its driver); kill what outlives the timeout."""
        deadline = time.monotonic() + timeout_s
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self.pids():
            with _ignored(psutil.Error):
                psutil.Process(pid).kill()
        while self.pids():
            time.sleep(0.1)

    def remove(self) -> None:
        self.drain()
        self.path.rmdir()


class _ignored:
    def __init__(self, *errors: type[BaseException]) -> None:
        self.errors = errors

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, self.errors)


@dataclass
class _PssSampler:
    """Peak of the summed PSS of every process in the given cgroups, and each process's last-seen CPU time."""

    groups: list[Cgroup]
    stop: threading.Event = field(default_factory=threading.Event)
    peak: int = 0
    cpu_by_process: dict[int, tuple[str, float]] = field(default_factory=dict)
    baseline: dict[int, float] = field(default_factory=dict)  # CPU-s of processes already running at the start

    def take_baseline(self) -> None:
        """What the processes already in the groups (a long-lived head's) had spent before the command."""
        for group in self.groups:
            for pid in group.pids():
                with _ignored(psutil.Error, OSError):
                    times = psutil.Process(pid).cpu_times()
                    self.baseline[pid] = times.user + times.system

    def run(self) -> None:
        while not self.stop.is_set():
            total = 0
            for group in self.groups:
                for pid in group.pids():
                    with _ignored(psutil.Error, OSError):
                        process = psutil.Process(pid)
                        with process.oneshot():
                            total += process.memory_full_info().pss
                            times = process.cpu_times()
                            self.cpu_by_process[pid] = (_role(process), times.user + times.system)
            self.peak = max(self.peak, total)
            self.stop.wait(SAMPLE_INTERVAL_S)

    def cpu_by_role(self) -> dict[str, float]:
        """CPU-s per kind of process, as last sampled (a lower bound: the cgroup total is exact)."""
        roles: dict[str, float] = {}
        for pid, (role, cpu_s) in self.cpu_by_process.items():
            roles[role] = roles.get(role, 0.0) + cpu_s - self.baseline.get(pid, 0.0)
        return dict(sorted(roles.items(), key=lambda item: -item[1]))


def _role(process: psutil.Process) -> str:
    """What a process of the tree is: the driver, a Ray daemon (by binary, title or script) or a Ray worker."""
    name = process.name()
    if name in ("gcs_server", "raylet") or name.endswith("Agent") or "Actor" in name:
        return name.split(".")[0]
    if name.startswith("ray::"):
        return "ray worker"
    arguments = process.cmdline()
    if "corpusmill.pipelines.cli" in arguments:
        return "driver (corpusmill CLI)"
    scripts = [Path(argument).name for argument in arguments[1:3] if argument.endswith(".py")]
    if scripts == ["setup_worker.py"]:
        return "ray worker"
    return scripts[0] if scripts else name


@dataclass
class Usage:
    wall_s: float
    cpu_s: float
    pss_gb: float
    cpu_by_role: dict[str, float] = field(default_factory=dict)


def measure(command: list[str], env: dict[str, str], name: str, log: Path, also: Cgroup | None = None) -> Usage:
    """Run ``command`` in a fresh cgroup: wall time to its exit; CPU of the cgroup once every member has
    exited, plus what ``also`` (a long-lived head's cgroup) spent meanwhile; peak PSS of both."""
    group = Cgroup(name)
    sampler = _PssSampler([group] + ([also] if also else []))
    sampler.take_baseline()
    thread = threading.Thread(target=sampler.run, daemon=True)
    also_before = also.cpu_s() if also else 0.0
    try:
        with log.open("w") as out:
            start = time.perf_counter()
            # preexec_fn with threads is unsafe; none runs yet (the sampler starts after the fork).
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=group.join)  # noqa: PLW1509
            thread.start()
            returncode = process.wait()
            wall_s = time.perf_counter() - start
        group.drain()
        sampler.stop.set()
        thread.join()
        cpu_s = group.cpu_s() + (also.cpu_s() - also_before if also else 0.0)
    finally:
        sampler.stop.set()
        group.remove()
    if returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {returncode}; see {log}")
    return Usage(wall_s, cpu_s, sampler.peak / 1e9, sampler.cpu_by_role())


def tiny_input(work: Path) -> Path:
    """Twelve real documents from this machine: the copyright files of installed Debian packages."""
    path = work / "tiny.jsonl"
    sources = sorted(Path("/usr/share/doc").glob("*/copyright"))[:DOCS]
    with path.open("w") as handle:
        for number, source in enumerate(sources):
            handle.write(json.dumps({"id": f"doc-{number}", "text": source.read_text(errors="replace")}) + "\n")
    return path


def export_tree(revision: str, work: Path) -> Path:
    """The package tree of ``revision``, importable as ``corpusmill`` from the returned PYTHONPATH entry."""
    root = work / f"tree-{revision.replace('/', '_')}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", "--prefix=corpusmill/", revision],
                             check=True, capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalHead:
    """`ray start --head` on loopback, token auth on, in its own cgroup (the README's long-lived local head)."""

    group: Cgroup
    address: str
    temp_dir: Path
    start_usage: Usage

    @classmethod
    def start(cls, env: dict[str, str], work: Path) -> LocalHead:
        port = free_port()
        temp_dir = Path(f"/tmp/rayhead-bench-{os.getpid()}")  # Unix socket paths must stay short
        group = Cgroup(f"ray-fixed-cost-head-{os.getpid()}")
        command = [str(BIN / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", *LEAN_HEAD_FLAGS,
                   f"--temp-dir={temp_dir}"]  # fmt: skip
        head_env = {**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
        sampler = _PssSampler([group])
        thread = threading.Thread(target=sampler.run, daemon=True)
        start = time.perf_counter()
        with (work / "head-start.log").open("w") as out:
            subprocess.run(
                command, env=head_env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=group.join, check=True
            )
        thread.start()
        wall_s = time.perf_counter() - start
        time.sleep(2.0)  # let the head settle before its CPU is charged to commands
        sampler.stop.set()
        thread.join()
        return cls(group, f"127.0.0.1:{port}", temp_dir, Usage(wall_s, group.cpu_s(), sampler.peak / 1e9))

    def stop(self) -> None:
        """Stop this head's processes only (``ray stop`` would stop every Ray on the machine)."""
        for pid in self.group.pids():
            with _ignored(psutil.Error):
                psutil.Process(pid).terminate()
        self.group.remove()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--previous", default="main", help="the git revision to compare with (default: main)")
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "bench_data" / "ray_fixed_cost")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    source = tiny_input(args.work)
    previous = export_tree(args.previous, args.work)
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    env.update(RAY_AUTH_MODE="token")  # both sides with token authentication, the token in ~/.ray/auth_token
    # Ray's sessions and its "latest cluster" file in a directory of this run's own: the previous
    # release's ray.init() would otherwise join whatever head a `ray start` on this machine left there.
    ray_tmp = Path(f"/tmp/rfc-{os.getpid()}")  # Unix socket paths must stay short
    ray_tmp.mkdir(exist_ok=True)
    env["RAY_TMPDIR"] = str(ray_tmp)
    head = LocalHead.start(env, args.work)
    ingest = [str(BIN / "python"), "-m", "corpusmill.pipelines.cli", "ingest", str(source), "--num-cpus", "2"]
    variants = {
        "previous": (ingest, {**env, "PYTHONPATH": str(previous)}, None),
        "current": (ingest, env, None),
        "ray": (ingest + ["--always-ray"], env, None),
        "head": (ingest + ["--ray-address", head.address], env, head.group),
        "imports": ([str(BIN / "python"), "-m", "corpusmill.pipelines.cli", "ingest", "--help"], env, None),
    }
    results: dict[str, list[Usage]] = {name: [] for name in variants}
    failures: list[str] = []
    try:
        for round_number in range(args.rounds):
            for name, (command, variant_env, also) in variants.items():
                out = args.work / f"out-{name}"
                shutil.rmtree(out, ignore_errors=True)
                full = command + ["--out", str(out)] if name != "imports" else command
                usage = _measure_with_retries(full, variant_env, f"{name}-{round_number}", args.work, also, failures)
                results[name].append(usage)
                print(f"[round {round_number + 1}] {name}: {usage.wall_s:.2f} s wall, {usage.cpu_s:.2f} CPU-s, "
                      f"{usage.pss_gb:.2f} GB peak PSS", file=sys.stderr)  # fmt: skip
            _check_same_output(args.work)
            table = render(results, head.start_usage, args.previous, round_number + 1, failures)
            (args.work / "ray_fixed_cost.md").write_text(table)  # kept round by round
    finally:
        head.stop()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    print((args.work / "ray_fixed_cost.md").read_text())


def _measure_with_retries(command: list[str], env: dict[str, str], run: str, work: Path, also: Cgroup | None,
                          failures: list[str], attempts: int = 3) -> Usage:  # fmt: skip
    """One measured run; a start-up that fails (on an overloaded machine Ray's raylet can time out
    waiting for its agents) is recorded in ``failures`` and run again."""
    for attempt in range(attempts):
        log = work / f"{run}-{attempt}.log"
        try:
            return measure(command, env, f"ray-fixed-cost-{os.getpid()}-{run}-{attempt}", log, also)
        except RuntimeError as error:
            failures.append(f"{run}: {_last_line(log)}")
            if attempt + 1 == attempts:
                raise
            print(f"[bench] {error}; again", file=sys.stderr)
    raise ValueError(f"attempts must be positive, not {attempts}")


def _last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line and not line[0].isspace()]
    return lines[-1][:200] if lines else "(no output)"


def _check_same_output(work: Path) -> None:
    """The four ingest outputs hold the same bytes (shards, stats), whatever ran them."""

    def data_files(out: Path) -> dict[str, bytes]:
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.parquet")) + [out / "stats.json"]}

    reference = data_files(work / "out-previous")
    for name in ("current", "ray", "head"):
        if data_files(work / f"out-{name}") != reference:
            raise RuntimeError(f"out-{name} differs from out-previous")


def render(results: dict[str, list[Usage]], head_start: Usage, previous: str, rounds: int, failures: list[str]) -> str:
    def cell(values: list[float], digits: int = 2) -> str:
        return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"

    labels = {
        "previous": f"before: `{previous}`, embedded Ray",
        "current": "after: the one unit in the CLI's process (default), Ray not started",
        "ray": "after: `--always-ray`, embedded Ray (lean, loopback)",
        "head": "after: `--ray-address` to a long-lived local head",
        "imports": "after: `ingest --help` (the CLI's imports, no Ray)",
    }
    lines = [
        (
            f"`corpusmill ingest` of {DOCS} documents (/usr/share/doc copyright files), {rounds} interleaved rounds; "
            "median (min–max). CPU-s: the whole process tree (cgroup); PSS: peak, summed over the tree."
        ),
        "",
        "| variant | wall s | CPU-s | peak PSS GB |",
        "|---|---|---|---|",
    ]
    for name, usages in results.items():
        lines.append(f"| {labels[name]} | {cell([u.wall_s for u in usages])} | {cell([u.cpu_s for u in usages])} "
                     f"| {cell([u.pss_gb for u in usages])} |")  # fmt: skip
    lines += [
        "",
        "CPU-s by process, last round (psutil's last sample of each process: a lower bound of the cgroup's total):",
        "",
    ]
    lines += ["| process | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    roles = sorted({role for usages in results.values() for role in usages[-1].cpu_by_role},
                   key=lambda role: -max(usages[-1].cpu_by_role.get(role, 0.0) for usages in results.values()))  # fmt: skip
    for role in roles:
        cells = [
            f"{usages[-1].cpu_by_role[role]:.2f}" if role in usages[-1].cpu_by_role else ""
            for usages in results.values()
        ]
        lines.append(f"| {role} | " + " | ".join(cells) + " |")
    lines += [
        "",
        (
            f"Starting the long-lived head once: {head_start.wall_s:.2f} s wall, {head_start.cpu_s:.2f} CPU-s, "
            f"{head_start.pss_gb:.2f} GB PSS. Goals per command: <= {GOALS['wall_s']} s wall, <= {GOALS['cpu_s']} CPU-s, "
            f"<= {GOALS['pss_gb']} GB PSS."
        ),
        "",
        *(["Runs that failed and were run again: " + "; ".join(failures), ""] if failures else []),
        (
            f"Machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.1f} GiB RAM, {platform.platform()}, "
            f"load average at the end {os.getloadavg()[0]:.1f} (shared machine: wall times are noisy)."
        ),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
