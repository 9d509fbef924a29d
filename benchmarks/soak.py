"""Soak: the demo pipeline on ~10x the demo corpus, twice at once into different outputs, then once alone.

Why (issue 15): a curation pipeline is trusted with long runs next to other work; this shows two
concurrent runs on one machine stay within its memory, finish, and produce what a single run
produces, byte for byte.

    .venv/bin/python -m benchmarks.soak --work /work/bench/faults/soak [--scale 10.75] [--with-train]

The corpus is ``pipelines.demo_corpus`` with ``max_docs_per_kind`` = scale x the demo's 800; on a
Debian machine English text runs out first (about 1,400 documents), so the scale is chosen to give
10x the demo's *bytes* and is reported with the document count it actually gave. ``train`` (a
fixed 36-step run that does not grow with the corpus) is left out unless --with-train.

Memory is sampled every 0.5 s over every process this script started, directly or not (it makes
itself a child subreaper, so Ray's daemonised helpers stay in its tree); each process is
attributed to its run by the ``CORPUSMILL_SOAK_RUN`` variable it inherited, and each sample to the
step ``pipeline_run.json`` says is running. Summed RSS counts shared pages once per process (an
upper bound); PSS (every 4th sample) splits them. Results go to WORK/soak.json and WORK/soak.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from corpusmill.pipelines.demo_corpus import DEFAULT_MAX_DOCS_PER_KIND, assemble_demo_inputs, read_demo_inputs
from corpusmill.pipelines.pipeline import load_pipeline

from benchmarks.demo_checksums import checksums
from benchmarks.process_tree import become_subreaper, process_usage

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_PIPELINE = REPO_ROOT / "pipelines" / "nemotron4.yaml"
DEMO_PROFILE = "demo"
RUN_ENV = "CORPUSMILL_SOAK_RUN"
SAMPLE_INTERVAL_S = 0.5
PSS_EVERY_SAMPLES = 4
GIB = 1024**3


@dataclass
class Peaks:
    """Peak summed memory per (run, step), and of everything at once."""

    rss: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    pss: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    total_rss: int = 0
    total_pss: int = 0
    cpu_by_pid: dict[int, tuple[str, float]] = field(default_factory=dict)


class Sampler:
    """Samples every descendant, attributing it to a run by its inherited environment."""

    def __init__(self, runs: dict[str, Path]) -> None:
        self.runs = runs
        self.peaks = Peaks()
        self.stop = threading.Event()
        self._run_of: dict[int, str | None] = {}

    def _run(self, process: psutil.Process) -> str | None:
        if process.pid not in self._run_of:
            try:
                self._run_of[process.pid] = process.environ().get(RUN_ENV)
            except psutil.Error:
                return None
        return self._run_of[process.pid]

    def _steps(self) -> dict[str, str]:
        steps = {}
        for name, out in self.runs.items():
            try:
                record = json.loads((out / "pipeline_run.json").read_text())
            except (OSError, ValueError):
                steps[name] = "start-up"
                continue
            running = [s["name"] for s in record.get("steps", []) if s.get("status") == "running"]
            steps[name] = running[0] if running else "between steps"
        return steps

    def loop(self) -> None:
        me = psutil.Process()
        samples = 0
        while not self.stop.is_set():
            with_pss = samples % PSS_EVERY_SAMPLES == 0
            steps = self._steps()
            rss: dict[str, int] = defaultdict(int)
            pss: dict[str, int] = defaultdict(int)
            for process in me.children(recursive=True):
                run = self._run(process)
                if run is None:
                    continue
                usage = process_usage(process, with_pss)
                if usage is None:
                    continue
                rss[run] += usage.rss
                pss[run] += usage.pss
                self.peaks.cpu_by_pid[process.pid] = (run, usage.cpu_s)
            for run, value in rss.items():
                key = (run, steps.get(run, "?"))
                self.peaks.rss[key] = max(self.peaks.rss[key], value)
                if with_pss:
                    self.peaks.pss[key] = max(self.peaks.pss[key], pss[run])
            self.peaks.total_rss = max(self.peaks.total_rss, sum(rss.values()))
            if with_pss:
                self.peaks.total_pss = max(self.peaks.total_pss, sum(pss.values()))
            samples += 1
            self.stop.wait(SAMPLE_INTERVAL_S)


def build_corpus(raw: Path, scale: float) -> Any:
    if (raw / "inputs.json").exists():
        return read_demo_inputs(raw)
    return assemble_demo_inputs(raw, max_docs_per_kind=round(DEFAULT_MAX_DOCS_PER_KIND * scale))


def run_command(out: Path, inputs: list[str], steps: list[str]) -> list[str]:
    command = [
        "nice",
        "-n",
        "10",
        sys.executable,
        "-m",
        "corpusmill.pipelines.cli",
        "run",
        str(DEMO_PIPELINE),
        "--profile",
        DEMO_PROFILE,
    ]
    command += ["--out", str(out), "--set", f"inputs={json.dumps(inputs)}", "--num-cpus", "2"]
    for step in steps:
        command += ["--only", step]
    return command


def run_group(names: list[str], work: Path, inputs: list[str], steps: list[str], sampler: Sampler) -> dict[str, Any]:
    """Start the named runs at once, wait for all; wall time and exit status of each."""
    started = time.monotonic()
    processes = {}
    for name in names:
        out = work / name
        sampler.runs[name] = out
        log = (work / f"{name}.log").open("w")
        env = {**os.environ, RUN_ENV: name}
        processes[name] = (subprocess.Popen(run_command(out, inputs, steps), stdout=log, stderr=log, env=env), log)
    result = {}
    for name, (process, log) in processes.items():
        code = process.wait()
        log.close()
        result[name] = {"returncode": code, "wall_s": round(time.monotonic() - started, 1)}
    return result


def step_outputs(out: Path) -> dict[str, Path]:
    record = json.loads((out / "pipeline_run.json").read_text())
    return {s["name"]: Path(s["out"]) for s in record["steps"] if s.get("status") in ("succeeded", "complete")}


def compare(work: Path, names: list[str], reference: str) -> dict[str, dict[str, Any]]:
    """Per step: do the other runs' outputs checksum (every file's bytes, Parquet rows too) like the reference?"""
    ref_steps = step_outputs(work / reference)
    result = {}
    for step, ref_out in ref_steps.items():
        ref_sums = checksums(ref_out)
        row: dict[str, Any] = {"files": len(ref_sums)}
        for name in names:
            other = step_outputs(work / name).get(step)
            row[name] = other is not None and checksums(other) == ref_sums
        result[step] = row
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--scale", type=float, default=10.75, help="max_docs_per_kind = scale x 800")
    parser.add_argument("--with-train", action="store_true")
    parser.add_argument(
        "--report", action="store_true", help="compare the steps finished so far and write soak.md; run nothing"
    )
    args = parser.parse_args()
    work = args.work.absolute()
    work.mkdir(parents=True, exist_ok=True)
    if args.report:
        results = {
            **json.loads((work / "soak.json").read_text()),
            "equal_to_single": compare(work, ["a", "b"], "single"),
        }
        (work / "soak.md").write_text(markdown(results))
        print(markdown(results))
        return
    become_subreaper()
    corpus = build_corpus(work / "raw", args.scale)
    inputs = [f"{path}={source}" for path, source in corpus.ingest_inputs]
    steps = [str(s.number) for s in load_pipeline(DEMO_PIPELINE).steps if args.with_train or s.stage != "train"]
    sampler = Sampler({})
    thread = threading.Thread(target=sampler.loop, daemon=True)
    thread.start()
    results: dict[str, Any] = {
        "corpus": {"docs_per_kind": corpus.docs_per_kind, "bytes": corpus.total_bytes, "scale": args.scale},
        "steps": steps,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    earlier = _earlier_concurrent(work / "soak.json")
    if earlier is None:
        results["concurrent"] = run_group(["a", "b"], work, inputs, steps, sampler)
        (work / "soak.json").write_text(json.dumps(_with_peaks(results, sampler), indent=2) + "\n")
    else:  # a rerun after the single run failed: the concurrent pair's measurements stand
        results = {**earlier, "resumed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        sampler.runs.update({name: work / name for name in ("a", "b")})
    shutil.rmtree(work / "single", ignore_errors=True)
    results["single"] = run_group(["single"], work, inputs, steps, sampler)
    sampler.stop.set()
    thread.join()
    results["equal_to_single"] = compare(work, ["a", "b"], "single")
    results = _with_peaks(results, sampler, earlier)
    (work / "soak.json").write_text(json.dumps(results, indent=2) + "\n")
    (work / "soak.md").write_text(markdown(results))
    print(markdown(results))


def _earlier_concurrent(path: Path) -> dict[str, Any] | None:
    """The results of an earlier soak whose concurrent pair succeeded, without its single run's numbers."""
    if not path.exists():
        return None
    earlier = json.loads(path.read_text())
    if any(run.get("returncode") != 0 for run in earlier.get("concurrent", {"a": {}}).values()):
        return None
    for name in ("peak_rss_bytes", "peak_pss_bytes"):
        earlier[name] = {key: value for key, value in earlier[name].items() if not key.startswith("single/")}
    earlier["cpu_s"] = {run: value for run, value in earlier["cpu_s"].items() if run != "single"}
    return earlier


def _with_peaks(results: dict[str, Any], sampler: Sampler, earlier: dict[str, Any] | None = None) -> dict[str, Any]:
    """The sampler's peaks (and those of an earlier, resumed soak) in the results."""
    peaks = sampler.peaks
    cpu: dict[str, float] = defaultdict(float)
    for run, seconds in peaks.cpu_by_pid.values():
        cpu[run] += seconds
    earlier = earlier or {}
    return {
        **results,
        "peak_rss_bytes": {
            **earlier.get("peak_rss_bytes", {}),
            **{f"{run}/{step}": value for (run, step), value in peaks.rss.items()},
        },
        "peak_pss_bytes": {
            **earlier.get("peak_pss_bytes", {}),
            **{f"{run}/{step}": value for (run, step), value in peaks.pss.items()},
        },
        "peak_total_rss_bytes": max(peaks.total_rss, earlier.get("peak_total_rss_bytes", 0)),
        "peak_total_pss_bytes": max(peaks.total_pss, earlier.get("peak_total_pss_bytes", 0)),
        "cpu_s": {**earlier.get("cpu_s", {}), **{run: round(seconds, 1) for run, seconds in cpu.items()}},
    }


def markdown(results: dict[str, Any]) -> str:
    runs = ["a", "b", "single"]
    steps = sorted({key.split("/", 1)[1] for key in results["peak_rss_bytes"]})
    lines = ["| step | " + " | ".join(f"{r} RSS / PSS GiB" for r in runs) + " | a, b equal single |", "|---" * 5 + "|"]
    equal = results.get("equal_to_single", {})
    for step in steps:
        cells = []
        for run in runs:
            rss = results["peak_rss_bytes"].get(f"{run}/{step}")
            pss = results["peak_pss_bytes"].get(f"{run}/{step}")
            cells.append("-" if rss is None else f"{rss / GIB:.2f} / {(pss or 0) / GIB:.2f}")
        verdict = equal.get(step)
        same = "-" if verdict is None else f"{verdict['a'] and verdict['b']} ({verdict['files']} files)"
        lines.append(f"| {step} | " + " | ".join(cells) + f" | {same} |")
    lines.append("")
    lines.append(
        f"peak of everything at once: RSS {results['peak_total_rss_bytes'] / GIB:.2f} GiB, "
        f"PSS {results['peak_total_pss_bytes'] / GIB:.2f} GiB; CPU s {results['cpu_s']}; "
        f"concurrent {results['concurrent']}; single {results.get('single')}"
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
