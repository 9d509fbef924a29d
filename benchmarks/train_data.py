"""How long the trainer's blend index takes to build, next to Megatron-LM's C++ helper, in one run.

For each size (default 1M and 100M samples) and a 25-prefix blend (the demo's Nemotron-4 resolution
has 25 training prefixes; weights drawn from a Dirichlet, fixed seed):

    megatron helpers_cpp   megatron.core.datasets.helpers_cpp.build_blending_indices (C++, int16 + int64 out)
    corpusmill build       trainer.data.BlendIndex.build (numba loop; uint8 choices + counts every 65,536)
    corpusmill cached      BlendIndex.cached on a warm cache: what every later start and every other rank pays

Both builds produce the same choices (checked). Times are wall and CPU seconds of this process, best
of ``--repeat``; numba's one-off compilation is timed apart (it is cached on disk after the first run).

    python benchmarks/train_data.py [--sizes 1000000 100000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _timed(fn, repeat: int) -> tuple[float, float, object]:
    best_wall = best_cpu = float("inf")
    result = None
    for _ in range(repeat):
        cpu, wall = time.process_time(), time.perf_counter()
        result = fn()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu, result


def _megatron(weights: np.ndarray, samples: int) -> np.ndarray:
    from megatron.core.datasets import helpers_cpp

    dataset_index = np.zeros(samples, dtype=np.int16)
    dataset_sample_index = np.zeros(samples, dtype=np.int64)
    helpers_cpp.build_blending_indices(dataset_index, dataset_sample_index, weights, len(weights), samples, False)
    return dataset_index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 100_000_000])
    parser.add_argument("--prefixes", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    from corpusmill.trainer.data import BlendIndex

    weights = np.random.default_rng(0).dirichlet(np.ones(args.prefixes))
    compile_wall, _, _ = _timed(lambda: BlendIndex.build(weights, 10), 1)
    lines = [
        f"{args.prefixes} prefixes; numba compile (first call, then cached on disk): {compile_wall:.2f} s",
        "",
        "| samples | implementation | wall s (best) | CPU s | output bytes |",
        "|---|---|---|---|---|",
    ]
    for samples in args.sizes:
        wall, cpu, expected = _timed(lambda: _megatron(weights, samples), args.repeat)
        lines.append(f"| {samples:,} | megatron helpers_cpp | {wall:.3f} | {cpu:.3f} | {samples * 10:,} |")
        wall, cpu, index = _timed(lambda: BlendIndex.build(weights, samples), args.repeat)
        if not np.array_equal(index.choices, expected):
            lines.append("choices differ from Megatron's: FAIL")
            print("\n".join(lines))
            return 1
        size = index.choices.nbytes + index.counts_at_chunk.nbytes
        lines.append(f"| {samples:,} | corpusmill build | {wall:.3f} | {cpu:.3f} | {size:,} |")
        with tempfile.TemporaryDirectory() as cache:
            BlendIndex.cached(weights, samples, Path(cache))
            wall, cpu, _ = _timed(lambda: BlendIndex.cached(weights, samples, Path(cache)), args.repeat)
        lines.append(f"| {samples:,} | corpusmill cached | {wall:.4f} | {cpu:.4f} | (memory-mapped) |")
        del expected, index
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    lines.append(f"\npeak RSS of this process: {peak:.2f} GiB")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
