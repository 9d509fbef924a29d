"""Exact-dedup benchmark: `corpusmill dedup exact` against polars on the same Parquet input.

Why: corpusmill's exact dedup is built to be global and memory-bounded on a cluster; this
measures what that costs on one machine against the obvious single-process answer, and
checks both against a ground truth (see corpus_gen.py).

    .venv/bin/python benchmarks/exact_dedup.py --size-gb 1.0 --work bench_data/exact

Every tool runs in its own subprocess, repeated and interleaved. A sampler sums the RSS
(every 0.1 s) and PSS (every 0.5 s) and tracks the CPU time of every process descended
from this one; the benchmark makes itself a child subreaper, so processes Ray detaches
stay in that tree. The results table goes to stdout and to bench_data/exact_dedup.md (copied into docs/BENCHMARKS.md by hand).
`exact_dedup.py polars VARIANT ENGINE OUT SHARD...` is the measured polars side.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:  # numpy and pyarrow stay out of the measured polars process
    import numpy as np
    import pyarrow as pa
    from corpus_gen import GeneratedCorpus

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DOC = REPO_ROOT / "bench_data" / "exact_dedup.md"
SAMPLE_INTERVAL_S = 0.1
PSS_EVERY_SAMPLES = 5
LEFTOVER_TIMEOUT_S = 30.0

# The polars formulations measured; each keeps, of every group of identical texts, the row with the smallest id.
POLARS_QUERIES = {
    "sort-unique": "docs.sort('id').unique(subset=['text'], keep='first')",
    "sort-group-first": "docs.sort('id').group_by('text').first()",
    "min-id-semi-join": "docs.join(docs.group_by('text').agg(pl.col('id').min()).select('id'), on='id', how='semi')",
}
POLARS_ENGINES = ("in-memory", "streaming")
DEFAULT_POLARS_RUNS = (
    "sort-unique:in-memory",
    "sort-unique:streaming",
    "sort-group-first:in-memory",
    "min-id-semi-join:streaming",
)


def run_polars(query: str, engine: str, out: Path, shards: list[str]) -> None:
    """The measured polars side: read the shards, keep the smallest id per text, write Parquet."""
    import polars as pl

    docs = pl.scan_parquet(shards)
    kept = {
        "sort-unique": lambda: docs.sort("id").unique(subset=["text"], keep="first"),
        "sort-group-first": lambda: docs.sort("id").group_by("text").first(),
        "min-id-semi-join": lambda: docs.join(
            docs.group_by("text").agg(pl.col("id").min()).select("id"), on="id", how="semi"
        ),
    }[query]()
    if engine == "streaming":
        kept.sink_parquet(out, engine="streaming")
    else:
        kept.collect(engine="in-memory").write_parquet(out)


@dataclass
class Usage:
    """One run of one tool, measured over its whole process tree."""

    wall_s: float
    peak_rss: int
    peak_pss: int
    cpu_s: float
    max_processes: int
    log_path: Path


@dataclass
class _TreeSampler:
    """Peak summed memory, CPU time and size of the tree of processes descended from this one.

    CPU time is each process's last sampled user+system time, so it misses at most a
    sample interval per process; getrusage(RUSAGE_CHILDREN) would miss more, since Ray
    processes that ignore SIGCHLD reap workers without accounting for them.
    """

    stop: threading.Event = field(default_factory=threading.Event)
    peak_rss: int = 0
    peak_pss: int = 0
    max_processes: int = 0
    cpu_by_pid: dict[int, float] = field(default_factory=dict)

    def run(self) -> None:
        me = psutil.Process()
        samples = 0
        while not self.stop.is_set():
            self._sample(me.children(recursive=True), with_pss=samples % PSS_EVERY_SAMPLES == 0)
            samples += 1
            self.stop.wait(SAMPLE_INTERVAL_S)

    def _sample(self, processes: list[psutil.Process], with_pss: bool) -> None:
        from process_tree import process_usage  # lazily: the measured polars side runs this file with -P

        rss = pss = 0
        for process in processes:
            usage = process_usage(process, with_pss)
            if usage is None:
                continue
            rss += usage.rss
            pss += usage.pss
            self.cpu_by_pid[process.pid] = usage.cpu_s
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)
        self.max_processes = max(self.max_processes, len(processes))


def measure(command: list[str], log_path: Path) -> Usage:
    """Run ``command`` to completion; wall time to its exit, memory and CPU of all its descendants."""
    sampler = _TreeSampler()
    thread = threading.Thread(target=sampler.run, daemon=True)
    with log_path.open("w") as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        thread.start()
        returncode = process.wait()
        wall_s = time.perf_counter() - start
    sampler.stop.set()
    thread.join()
    killed = _finish_leftovers()
    if killed:
        print(
            f"[bench] killed {killed} process(es) still running {LEFTOVER_TIMEOUT_S:.0f} s after {command[0]} exited",
            file=sys.stderr,
        )
    if returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} exited with {returncode}; see {log_path}")
    cpu_s = sum(sampler.cpu_by_pid.values())
    return Usage(wall_s, sampler.peak_rss, sampler.peak_pss, cpu_s, sampler.max_processes, log_path)


def _finish_leftovers() -> int:
    """Wait for what a tool left running (Ray stops after its driver); kill what outlives the timeout."""
    leftovers = psutil.Process().children(recursive=True)
    _, alive = psutil.wait_procs(leftovers, timeout=LEFTOVER_TIMEOUT_S)
    for process in alive:
        process.kill()
    psutil.wait_procs(alive, timeout=5)
    return len(alive)


@dataclass(frozen=True)
class Truth:
    """What an exact dedup of the generated corpus must produce."""

    docs: int
    kept_ids: np.ndarray  # sorted
    duplicates: pa.Table  # (id, kept_id), sorted by id

    @classmethod
    def of(cls, corpus: GeneratedCorpus) -> Truth:
        import numpy as np

        all_ids = np.concatenate([_ids(path) for path in corpus.shard_paths])
        duplicates = corpus.read_planted_duplicates().sort_by("id")
        kept_ids = np.setdiff1d(all_ids, duplicates["id"].to_numpy(zero_copy_only=False).astype(str))
        return cls(len(all_ids), kept_ids, duplicates)

    def removed(self, label: str, kept_ids: np.ndarray) -> int:
        """Documents a tool removed, after checking it kept exactly the smallest id of each text."""
        import numpy as np

        kept = np.sort(kept_ids)
        if not np.array_equal(kept, self.kept_ids):
            missing = np.setdiff1d(self.kept_ids, kept)[:5].tolist()
            extra = np.setdiff1d(kept, self.kept_ids)[:5].tolist()
            raise AssertionError(
                f"{label}: {len(kept)} kept ids, {len(self.kept_ids)} expected "
                f"(missing e.g. {missing}, unexpected e.g. {extra})"
            )
        return self.docs - len(kept)


def _ids(parquet: Path) -> np.ndarray:
    import pyarrow.parquet as pq

    return pq.read_table(parquet, columns=["id"])["id"].to_numpy(zero_copy_only=False).astype(str)


def verify_corpusmill(out: Path, truth: Truth) -> int:
    """Kept set, stats.json and duplicates.parquet against the truth; the number removed."""
    import numpy as np
    import pyarrow.parquet as pq

    from corpusmill.curation.dataset import Dataset
    from corpusmill.curation.dedup.exact_stage import DUPLICATES_FILE, REASON

    output = Dataset.open(out)
    removed = truth.removed("corpusmill", np.concatenate([_ids(output.shard_path(s)) for s in output.shards]))
    counted = json.loads((out / "stats.json").read_text())["removed"][REASON]["docs"]
    if counted != removed:
        raise AssertionError(f"corpusmill's stats.json counts {counted} removed, its output is {removed} short")
    duplicates = pq.read_table(out / DUPLICATES_FILE).sort_by("id")
    if not duplicates.cast(truth.duplicates.schema).equals(truth.duplicates):
        raise AssertionError("corpusmill's duplicates.parquet differs from the planted (id, kept_id) pairs")
    return removed


def verify_polars(out: Path, truth: Truth) -> int:
    return truth.removed("polars", _ids(out))


@dataclass(frozen=True)
class Contender:
    label: str
    how: str
    command: list[str]
    out: Path
    verify: Callable[[Path, Truth], int]


def contenders(corpus: GeneratedCorpus, polars_runs: list[str], num_cpus: int, runs_dir: Path) -> list[Contender]:
    corpusmill = Path(sys.executable).with_name("corpusmill")
    if not corpusmill.exists():
        raise SystemExit(
            f"{corpusmill} not found: install corpusmill into this venv first (`make test` or pip install -e .)"
        )
    out = runs_dir / "corpusmill"
    found = [
        Contender(
            "corpusmill dedup exact",
            f"subprocess, embedded Ray, --num-cpus {num_cpus}",
            [str(corpusmill), "dedup", "exact", str(corpus.root), "--out", str(out), "--num-cpus", str(num_cpus)],
            out,
            verify_corpusmill,
        )
    ]
    shards = [str(path) for path in corpus.shard_paths]
    for run in polars_runs:
        query, engine = run.split(":")
        out = runs_dir / f"polars-{query}-{engine}.parquet"
        # -P: the measured process must not import from benchmarks/ (nor anything there shadowing the stdlib).
        command = [sys.executable, "-P", str(Path(__file__).resolve()), "polars", query, engine, str(out), *shards]
        found.append(
            Contender(f"polars {query}", f"`{POLARS_QUERIES[query]}`, {engine} engine", command, out, verify_polars)
        )
    return found


def _polars_run(value: str) -> str:
    query, _, engine = value.partition(":")
    if query not in POLARS_QUERIES or engine not in POLARS_ENGINES:
        raise argparse.ArgumentTypeError(
            f"expected QUERY:ENGINE with QUERY in {list(POLARS_QUERIES)}, ENGINE in {POLARS_ENGINES}"
        )
    return value


@dataclass
class Result:
    contender: Contender
    usages: list[Usage] = field(default_factory=list)
    removed: int = 0

    @property
    def best(self) -> Usage:
        return min(self.usages, key=lambda usage: usage.wall_s)

    @property
    def median(self) -> Usage:
        return sorted(self.usages, key=lambda usage: usage.wall_s)[len(self.usages) // 2]


@dataclass
class SizeRun:
    """Every tool, repeated, on one generated corpus."""

    corpus: GeneratedCorpus
    generate_s: float
    results: list[Result]


def run_size(args: argparse.Namespace, size_gb: float) -> SizeRun:
    from corpus_gen import CorpusSpec, build_corpus

    start = time.perf_counter()
    corpus = build_corpus(CorpusSpec(int(size_gb * 1e9), args.seed, args.shards), args.work)
    generate_s = time.perf_counter() - start
    print(
        f"[bench] {corpus.root}: {corpus.docs:,} docs, {corpus.text_bytes / 1e6:,.1f} MB ({generate_s:.0f} s)",
        file=sys.stderr,
    )
    truth = Truth.of(corpus)
    runs_dir = args.work / "runs" / corpus.root.name
    runs_dir.mkdir(parents=True, exist_ok=True)
    results = [Result(c) for c in contenders(corpus, args.polars, args.num_cpus, runs_dir)]
    for repeat in range(args.repeats):
        for result in results:
            _remove(result.contender.out)
            usage = measure(result.contender.command, runs_dir / f"{result.contender.out.name}.{repeat}.log")
            result.removed = result.contender.verify(result.contender.out, truth)
            result.usages.append(usage)
            print(
                f"[bench] {result.contender.label} ({result.contender.how}) run {repeat + 1}/{args.repeats}: "
                f"{usage.wall_s:.1f} s, peak RSS {usage.peak_rss / 2**30:.2f} GiB",
                file=sys.stderr,
            )
    for result in results:
        _remove(result.contender.out)
    return SizeRun(corpus, generate_s, results)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def run_benchmark(args: argparse.Namespace) -> str:
    from process_tree import become_subreaper

    become_subreaper()
    load_before = os.getloadavg()
    size_runs = [run_size(args, size_gb) for size_gb in args.size_gb]
    return report(args, size_runs, load_before, os.getloadavg())


def report(
    args: argparse.Namespace,
    size_runs: list[SizeRun],
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> str:
    command = shlex.join([_repo_relative(sys.executable), _repo_relative(sys.argv[0]), *sys.argv[1:]])
    versions = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in ("ray", "pyarrow", "polars"))
    lines = [
        "# Exact dedup: corpusmill vs polars",
        "",
        f"Command (from the repository root): `{command}`",
        "",
        (
            f"* Machine: {_cpu_model()}, {os.cpu_count()} cores, "
            f"{psutil.virtual_memory().total / 2**30:.1f} GiB RAM, {platform.platform()}."
        ),
        (
            f"* Load average (1 min) {load_before[0]:.1f} before the runs and {load_after[0]:.1f} after: the "
            "machine was shared with other work, so wall times are noisy; best-of-N is the closest to an idle "
            "machine, CPU s the least sensitive to load."
        ),
        f"* Software: Python {platform.python_version()}, corpusmill at {_git_head()}, {versions}.",
        (
            f"* Runs: {args.repeats} per tool, interleaved, warm page cache. Each tool reads the same Parquet shards "
            "and writes the kept documents as zstd Parquet; corpusmill also writes `duplicates.parquet`, its "
            "manifest and stats."
        ),
        (
            "* Correctness, checked on every run: each tool kept exactly the smallest id of each group of identical "
            "texts, so all removed the planted duplicates and kept the same id set; corpusmill's "
            "`duplicates.parquet` equals the planted (`id`, `kept_id`) pairs and its `stats.json` agrees."
        ),
        "",
    ]
    for size_run in size_runs:
        lines += _size_section(size_run)
    lines += [
        (
            "Columns: docs/s and text MB/s (10^6 bytes of UTF-8 text) use the best wall time. Peak RSS is the "
            "largest sum, over the tool's whole process tree, of resident memory sampled every 0.1 s; it counts "
            "shared pages (libraries, Ray's shared-memory object store) once per process that maps them. Peak PSS "
            "(sampled every 0.5 s) splits shared pages among the processes sharing them, so its sum is the tree's "
            "real footprint. CPU s is user+system time summed over the tree (median run). Wall time includes "
            "interpreter start-up and, for corpusmill, starting and stopping the embedded Ray."
        ),
        "",
    ]
    return "\n".join(lines)


def _size_section(size_run: SizeRun) -> list[str]:
    corpus = size_run.corpus
    mb = corpus.text_bytes / 1e6
    shard_mb = sum(path.stat().st_size for path in corpus.shard_paths) / 1e6
    sources = ", ".join(f"{name} {count:,}" for name, count in corpus.docs_per_source.items())
    lines = [
        f"## {mb:,.0f} MB of text",
        "",
        (
            f"Corpus: {corpus.docs:,} documents, {mb:,.1f} MB of UTF-8 text in {len(corpus.shard_paths)} Parquet "
            f"shards ({shard_mb:,.1f} MB zstd), seed {corpus.spec.seed}; sources: {sources}. "
            f"{corpus.planted_duplicates:,} planted exact duplicates in {corpus.duplicate_groups:,} groups "
            f"({corpus.planted_duplicates / corpus.docs:.1%} of documents). Generated by `benchmarks/corpus_gen.py` "
            f"in {size_run.generate_s:.0f} s (0 = cached)."
        ),
        "",
        (
            "| tool | how | wall s best | wall s median | docs/s | text MB/s | peak RSS, tree sum "
            "| peak PSS, tree sum | CPU s | processes | removed |"
        ),
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in size_run.results:
        best = result.best
        lines.append(
            f"| {result.contender.label} | {result.contender.how} | {best.wall_s:.1f} | {result.median.wall_s:.1f} "
            f"| {corpus.docs / best.wall_s:,.0f} | {mb / best.wall_s:,.1f} "
            f"| {max(u.peak_rss for u in result.usages) / 2**30:.2f} GiB "
            f"| {_peak_pss(result) / 2**30:.2f} GiB "
            f"| {result.median.cpu_s:.1f} | {max(u.max_processes for u in result.usages)} | {result.removed:,} |"
        )
    corpusmill, *polars = size_run.results
    fastest = min(polars, key=lambda result: result.best.wall_s)
    comparison = (
        f"corpusmill against the fastest polars run ({fastest.contender.how}): "
        f"{corpusmill.best.wall_s / fastest.best.wall_s:.1f}x the best wall time, "
        f"{corpusmill.median.cpu_s / fastest.median.cpu_s:.1f}x the CPU time, "
        f"{_peak_pss(corpusmill) / _peak_pss(fastest):.2f}x the peak PSS."
    )
    phases = [
        line
        for line in corpusmill.best.log_path.read_text().splitlines()
        if re.match(r"\[dedup_exact/\w+\] (\d+)/\1 units", line)
    ]
    return [*lines, "", comparison, "", "corpusmill's own phase lines (best run):", "", "```", *phases, "```", ""]


def _peak_pss(result: Result) -> int:
    return max(usage.peak_pss for usage in result.usages)


def _repo_relative(path: str) -> str:
    resolved = Path(path).absolute()
    return str(resolved.relative_to(REPO_ROOT)) if resolved.is_relative_to(REPO_ROOT) else path


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _git_head() -> str:
    completed = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    return f"commit {completed.stdout.strip()}" if completed.returncode == 0 else "(not a git checkout)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size-gb", type=float, nargs="+", default=[1.0], help="corpus sizes to run, in 10^9 bytes of UTF-8 text"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shards", type=int, default=12, help="Parquet shards in the generated corpus")
    parser.add_argument("--work", type=Path, default=Path("bench_data/exact"), help="corpus cache and run outputs")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs for corpusmill's embedded Ray")
    parser.add_argument("--repeats", type=int, default=3, help="runs per tool, interleaved")
    parser.add_argument(
        "--polars",
        type=_polars_run,
        nargs="*",
        default=list(DEFAULT_POLARS_RUNS),
        metavar="QUERY:ENGINE",
        help=f"polars runs; QUERY in {list(POLARS_QUERIES)}, ENGINE in {list(POLARS_ENGINES)}",
    )
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="markdown file the results are written to")
    return parser


def main(argv: list[str]) -> None:
    if argv[:1] == ["polars"]:
        query, engine, out, *shards = argv[1:]
        run_polars(query, engine, Path(out), shards)
        return
    args = build_parser().parse_args(argv)
    markdown = run_benchmark(args)
    print(markdown)
    args.doc.write_text(markdown)


if __name__ == "__main__":
    main(sys.argv[1:])
