"""Speed and memory of near-duplicate removal.

    .venv/bin/python -m benchmarks.fuzzy_dedup signatures [--docs 5000]
    .venv/bin/python -m benchmarks.fuzzy_dedup end-to-end [--docs 100000 300000 1000000] [--work DIR]

``signatures``: MinHash signatures per second on one core for the same
documents (40-line chunks of real files, fuzzy_corpus.py), 128 permutations,
5-word shingles: corpusmill from raw text (normalisation and shingling
included) against datasketch ``MinHash.update_batch`` and rensa
``RMinHash.digest_matrix_from_token_sets``, which are handed ready-made
shingle lists (the Python shingling they need is timed on its own line).
Each figure is the best of 3-5 runs, in one process, one thread
(RAYON_NUM_THREADS=1 for rensa); ratios use CPU seconds, which other load on
a shared machine does not inflate the way it inflates wall time.

``end-to-end``: ``corpusmill dedup fuzzy`` on an embedded Ray using every
core, wall time and peak memory (sum of the proportional set size of the CLI
process and all its descendants, Ray's workers and object store included,
sampled every second), for each corpus size.
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
from collections.abc import Callable
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.fuzzy_corpus import build_chunk_corpus
from corpusmill.curation.dedup.minhash import MinHasher
from corpusmill.curation.dedup.text_norm import normalize

NUM_PERM = 128
NGRAM = 5


def best_of(runs: int, function: Callable[[], object]) -> tuple[float, float]:
    """Smallest (wall, CPU) seconds of ``runs`` calls. CPU time is the per-core figure: other
    processes on a shared machine stretch the wall clock of a one-thread run, not its CPU time."""
    best = (float("inf"), float("inf"))
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best


def python_shingles(texts: pa.ChunkedArray) -> list[list[str]]:
    """The shingle strings a Python MinHash user builds (corpusmill's normalisation, via Arrow)."""
    shingles = []
    for normalized in normalize(texts).to_pylist():
        words = normalized.split(" ") if normalized else []
        shingles.append([" ".join(words[i : i + NGRAM]) for i in range(max(len(words) - NGRAM + 1, 1))])
    return shingles


def signatures_benchmark(docs: int, work: Path) -> list[dict]:
    import rensa
    from datasketch import MinHash

    corpus = build_chunk_corpus(work / "corpus-signatures", docs, shards=1)
    texts = pq.read_table(next(corpus.glob("shards/*.parquet")), columns=["text"])["text"]
    megabytes = sum(len(t.encode()) for t in texts.to_pylist()) / 1e6
    hasher = MinHasher(num_perm=NUM_PERM, ngram=NGRAM)
    hasher.signatures(texts.slice(0, 10))  # compile outside the timing
    shingles = python_shingles(texts)
    shingle_bytes = [[s.encode() for s in doc] for doc in shingles]

    def datasketch_run() -> None:
        for doc in shingle_bytes:
            MinHash(num_perm=NUM_PERM, seed=1).update_batch(doc)

    ours = best_of(5, lambda: hasher.signatures(texts))
    datasketch = best_of(3, datasketch_run)
    rensa_core = best_of(5, lambda: rensa.RMinHash.digest_matrix_from_token_sets(shingles, NUM_PERM, 1))
    shingling = best_of(3, lambda: python_shingles(texts))
    timings = {
        "corpusmill MinHasher.signatures (raw text in)": ours,
        "datasketch MinHash.update_batch (shingles in)": datasketch,
        "rensa digest_matrix_from_token_sets (shingles in)": rensa_core,
        "Python shingling (what datasketch/rensa users add)": shingling,
        "rensa incl. Python shingling (raw text in)": (rensa_core[0] + shingling[0], rensa_core[1] + shingling[1]),
    }
    return [
        {
            "method": name,
            "wall_s": wall,
            "cpu_s": cpu,
            "docs_per_cpu_s": docs / cpu,
            "mb_per_cpu_s": megabytes / cpu,
            "corpusmill_speedup_cpu": cpu / ours[1],
        }
        for name, (wall, cpu) in timings.items()
    ]


def _tree_pss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def run_measured(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and peak PSS of a command and all its descendants."""
    start = time.perf_counter()
    child = psutil.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_pss(child))
            stop.wait(1.0)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, stderr = child.communicate()
    stop.set()
    sampler.join()
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{stderr}")
    return time.perf_counter() - start, peak


def end_to_end_benchmark(sizes: list[int], work: Path) -> list[dict]:
    rows = []
    for docs in sizes:
        corpus = build_chunk_corpus(work / f"corpus-{docs}", docs)
        if sum(pq.ParquetFile(p).metadata.num_rows for p in corpus.glob("shards/*.parquet")) != docs:
            raise RuntimeError(f"{corpus} does not hold {docs:,} documents; delete it to rebuild")
        out = work / f"out-{docs}"
        shutil.rmtree(out, ignore_errors=True)
        argv = [sys.executable, "-m", "corpusmill.pipelines.cli", "dedup", "fuzzy", str(corpus), "--out", str(out)]
        seconds, peak = run_measured(argv)
        stats = json.loads((out / "stats.json").read_text())
        rows.append(
            {
                "docs": docs,
                "input_mb": stats["in"]["bytes"] / 1e6,
                "seconds": seconds,
                "docs_per_s": docs / seconds,
                "peak_memory_gb": peak / 2**30,
                "removed": stats["removed"].get("near_duplicate", {}).get("docs", 0),
                "pairs_examined": stats["counters"].get("pairs_examined", 0),
                "components": stats["counters"].get("components", 0),
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        shutil.rmtree(out, ignore_errors=True)
    return rows


def markdown(rows: list[dict]) -> str:
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [f"{v:,.2f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else v for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["signatures", "end-to-end"])
    parser.add_argument("--docs", type=int, nargs="+", default=None)
    parser.add_argument("--work", type=Path, default=Path("/tmp/corpusmill-fuzzy-bench"))
    args = parser.parse_args()
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if args.mode == "signatures":
        rows = signatures_benchmark((args.docs or [5000])[0], args.work)
    else:
        rows = end_to_end_benchmark(args.docs or [100_000, 300_000, 1_000_000], args.work)
    print(f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB")
    print(markdown(rows))


if __name__ == "__main__":
    main()
