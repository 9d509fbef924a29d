"""Near-duplicate quality on real documents: corpusmill vs datasketch, rensa and datatrove.

    .venv/bin/python -m benchmarks.fuzzy_quality [--thresholds 0.7 0.8 0.9] [--max-per-source N]

Ground truth: exact Jaccard of 5-word shingle sets (corpusmill's normalisation)
for every pair, by prefix filtering (fuzzy_ground_truth.py). Every method sees
the same documents, threshold, n-gram size and 128 permutations, and is scored
two ways:
rensa needs bands dividing 128: it gets the banding nearest corpusmill's (its
candidates before verification); datasketch and datatrove get datasketch's
optimum for the threshold.
  pairs     the pairs the method itself declares duplicates (corpusmill:
            verified edges; datasketch/rensa: LSH candidates; datatrove: the
            pairs its bucket step writes) against all pairs with J >= t
  clusters  pairwise precision/recall of its final clusters against the
            connected components of the true pairs (the same rule corpusmill
            applies), so chains and representative choice are scored alike
corpusmill's clusters come from the real `dedup fuzzy` stage on Ray, checked
against the in-process run of the same functions that gives its edges.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.fuzzy_eval_set import eval_documents
from benchmarks.fuzzy_ground_truth import similar_pairs
from corpusmill.curation.dedup.banding import optimal_bands
from corpusmill.curation.dedup.components import components_single_node
from corpusmill.curation.dedup.fuzzy_stage import DedupFuzzyOptions, FuzzyConfig, dedup_fuzzy
from corpusmill.curation.dedup.lsh import band_keys, bucket_pairs, unique_pairs
from corpusmill.curation.dedup.shingles import shingle_sets
from corpusmill.curation.dedup.text_norm import normalize
from corpusmill.curation.dedup.verify import estimated_jaccard, exact_jaccard

NUM_PERM = 128
NGRAM = 5
SEED = 1
Pairs = tuple[np.ndarray, np.ndarray]


def shingle_lists(texts: pa.ChunkedArray):  # type: ignore[no-untyped-def]
    """Each document's shingle strings, lazily: the token input of rensa."""
    for normalized in normalize(texts).to_pylist():
        words = normalized.split(" ") if normalized else []
        if 0 < len(words) < NGRAM:
            yield [" ".join(words)]
        else:
            yield [" ".join(words[i : i + NGRAM]) for i in range(len(words) - NGRAM + 1)]


def corpusmill_edges(texts: pa.ChunkedArray, config: FuzzyConfig) -> Pairs:
    """The stage's per-document logic in one process: candidates, then verification."""
    hasher = config.hasher
    signatures = hasher.signatures(texts)
    has_shingles = np.flatnonzero((signatures != hasher.empty_value).any(axis=1))
    keys = band_keys(signatures[has_shingles], config.bands, config.rows)
    docs = np.repeat(has_shingles, config.bands)
    left, right = unique_pairs(*bucket_pairs(keys.ravel(), docs, config.bucket_window))
    if config.verify == "exact":
        similarity = exact_jaccard(shingle_sets(texts, config.ngram), left, right)
    else:
        similarity = estimated_jaccard(signatures, left, right)
    keep = similarity >= config.threshold
    return left[keep], right[keep]


def corpusmill_stage_clusters(table: pa.Table, config: FuzzyConfig, workdir: Path) -> np.ndarray:
    """Cluster label of every document from the real stage's clusters.parquet."""
    from corpusmill.pipelines.execution import RayExecutor

    (workdir / "in").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, workdir / "in" / "docs.parquet", row_group_size=2000)
    out = workdir / f"out-{config.threshold}-{config.verify}"
    options = DedupFuzzyOptions(input=str(workdir / "in"), out=str(out), **asdict(config))
    dedup_fuzzy(options, executor=RayExecutor(), overwrite=True)
    clusters = pq.read_table(out / "clusters.parquet")
    position = {doc_id: i for i, doc_id in enumerate(table["id"].to_pylist())}
    labels = np.arange(table.num_rows)
    for doc_id, cluster_id in zip(clusters["id"].to_pylist(), clusters["cluster_id"].to_pylist()):
        labels[position[doc_id]] = position[cluster_id]
    return labels


def datasketch_candidates(signatures: np.ndarray, threshold: float) -> Pairs:
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    sketches = [MinHash(seed=SEED, hashvalues=row, scheme="affine32") for row in signatures]
    with lsh.insertion_session() as session:
        for key, sketch in enumerate(sketches):
            if not sketch.is_empty():
                session.insert(key, sketch)
    left, right = [], []
    for key, sketch in enumerate(sketches):
        if not sketch.is_empty():
            found = [other for other in lsh.query(sketch) if other > key]
            left += [key] * len(found)
            right += found
    return np.array(left, dtype=np.int64), np.array(right, dtype=np.int64)


def rensa_bands(rows: int) -> int:
    """rensa needs bands dividing num_perm: the power-of-two band size nearest ``rows`` (ties: smaller)."""
    band_size = min((2**k for k in range(8)), key=lambda size: (abs(size - rows), size))
    return NUM_PERM // band_size


def rensa_candidates(texts: pa.ChunkedArray, threshold: float, bands: int) -> Pairs:
    import rensa

    sketches = rensa.RMinHash.from_token_sets(shingle_lists(texts), NUM_PERM, SEED)
    lsh = rensa.RMinHashLSH(threshold, NUM_PERM, bands)
    lsh.insert_many(sketches)
    left, right = [], []
    for key, found in enumerate(lsh.query_all(sketches)):
        found = [other for other in found if other > key]
        left += [key] * len(found)
        right += found
    return np.array(left, dtype=np.int64), np.array(right, dtype=np.int64)


def datatrove_run(texts: list[str], bands: int, rows: int, workdir: Path) -> tuple[Pairs, np.ndarray]:
    """datatrove's four-step MinHash pipeline (whitespace words after its own normalisation)."""
    from datatrove.data import Document
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupSignature,
    )

    from benchmarks.datatrove_words import WhitespaceWords

    config = MinhashConfig(n_grams=NGRAM, num_buckets=bands, hashes_per_bucket=rows, seed=SEED)
    documents = [Document(text=text, id=str(i)) for i, text in enumerate(texts)]
    steps = [
        ([documents, MinhashDedupSignature(f"{workdir}/sigs", config=config, language=WhitespaceWords())], 1),
        ([MinhashDedupBuckets(f"{workdir}/sigs", f"{workdir}/buckets", config=config)], bands),
        ([MinhashDedupCluster(f"{workdir}/buckets", f"{workdir}/clusters", config=config, save_cluster_id=True)], 1),
    ]
    for number, (pipeline, tasks) in enumerate(steps):
        LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, logging_dir=str(workdir / f"logs{number}")).run()
    dups = np.concatenate(
        [np.fromfile(path, dtype=np.uint32).reshape(-1, 4) for path in sorted((workdir / "buckets").glob("*.dups"))]
    )
    left, right = (
        np.minimum(dups[:, 1], dups[:, 3]).astype(np.int64),
        np.maximum(dups[:, 1], dups[:, 3]).astype(np.int64),
    )
    labels = np.arange(len(texts))
    cluster_file = workdir / "clusters" / "000000.clusters"
    if cluster_file.exists():
        doc_cluster = np.fromfile(cluster_file, dtype=np.uint32).reshape(-1, 2).astype(np.int64)
        labels[doc_cluster[:, 0]] = len(texts) + doc_cluster[:, 1]
    return unique_pairs(left, right), labels


def labels_from_edges(edges: Pairs, num_docs: int) -> np.ndarray:
    labels = np.arange(num_docs)
    members, roots = components_single_node(*edges)
    labels[members] = roots
    return labels


def pair_scores(found: Pairs, truth: Pairs) -> tuple[float, float]:
    found_set = set(zip(*(side.tolist() for side in unique_pairs(*found))))
    truth_set = set(zip(truth[0].tolist(), truth[1].tolist()))
    hits = len(found_set & truth_set)
    return hits / max(len(found_set), 1), hits / max(len(truth_set), 1)


def _same_label_pairs(*labelings: np.ndarray) -> int:
    _, counts = np.unique(np.stack(labelings), axis=1, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def cluster_scores(found: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Pairwise precision and recall of a clustering (labels per document)."""
    hits = _same_label_pairs(found, truth)
    return hits / max(_same_label_pairs(found), 1), hits / max(_same_label_pairs(truth), 1)


def timed(function: Callable, *args):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def evaluate(table: pa.Table, thresholds: list[float], workdir: Path) -> list[dict]:
    texts = table["text"]
    sets = shingle_sets(texts, NGRAM)
    (truth_left, truth_right, truth_jaccard), truth_seconds = timed(similar_pairs, sets, min(thresholds))
    print(
        f"ground truth: {truth_left.size:,} pairs with J >= {min(thresholds)} in {truth_seconds:.1f}s", file=sys.stderr
    )
    signatures = FuzzyConfig().hasher.signatures(texts)
    rows = []
    for threshold in thresholds:
        in_truth = truth_jaccard >= threshold
        truth = (truth_left[in_truth], truth_right[in_truth])
        truth_labels = labels_from_edges(truth, table.num_rows)
        ds_bands, ds_rows = optimal_bands(threshold, NUM_PERM)
        methods: dict[str, tuple[Pairs, np.ndarray, float]] = {}
        for verify in ("exact", "estimate"):
            config = FuzzyConfig(threshold=threshold, verify=verify).resolved()
            edges, seconds = timed(corpusmill_edges, texts, config)
            labels = corpusmill_stage_clusters(table, config, workdir)
            if not np.array_equal(labels, labels_from_edges(edges, table.num_rows)):
                raise AssertionError("the Ray stage's clusters differ from the in-process run of the same functions")
            methods[f"corpusmill (verify {verify}, {config.bands}x{config.rows})"] = (edges, labels, seconds)
        candidates, seconds = timed(datasketch_candidates, signatures, threshold)
        methods[f"datasketch MinHashLSH ({ds_bands}x{ds_rows})"] = (
            candidates,
            labels_from_edges(candidates, table.num_rows),
            seconds,
        )
        rensa_band_count = rensa_bands(FuzzyConfig(threshold=threshold).resolved().rows)
        candidates, seconds = timed(rensa_candidates, texts, threshold, rensa_band_count)
        methods[f"rensa RMinHashLSH ({rensa_band_count}x{NUM_PERM // rensa_band_count})"] = (
            candidates,
            labels_from_edges(candidates, table.num_rows),
            seconds,
        )
        (pairs, labels), seconds = timed(
            datatrove_run, texts.to_pylist(), ds_bands, ds_rows, workdir / f"datatrove-{threshold}"
        )
        methods[f"datatrove MinHash ({ds_bands}x{ds_rows})"] = (pairs, labels, seconds)
        for name, (pairs, labels, seconds) in methods.items():
            pair_precision, pair_recall = pair_scores(pairs, truth)
            cluster_precision, cluster_recall = cluster_scores(labels, truth_labels)
            rows.append(
                {
                    "threshold": threshold,
                    "method": name,
                    "true_pairs": int(truth[0].size),
                    "pairs_found": int(unique_pairs(*pairs)[0].size),
                    "pair_precision": pair_precision,
                    "pair_recall": pair_recall,
                    "cluster_precision": cluster_precision,
                    "cluster_recall": cluster_recall,
                    "seconds": seconds,
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| t | method | true pairs | pairs found | pair precision | pair recall "
        "| cluster precision | cluster recall | s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['threshold']} | {row['method']} | {row['true_pairs']:,} | {row['pairs_found']:,} | "
            f"{row['pair_precision']:.4f} | {row['pair_recall']:.4f} | {row['cluster_precision']:.4f} | "
            f"{row['cluster_recall']:.4f} | {row['seconds']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.7, 0.8, 0.9])
    parser.add_argument("--max-per-source", type=int, default=None, help="cap documents per source (quick runs)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    from corpusmill.pipelines.execution import ensure_ray

    ensure_ray()
    table = eval_documents(args.max_per_source)
    print(
        f"evaluation set: {table.num_rows:,} documents, {pc.sum(pc.binary_length(table['text'])).as_py() / 1e6:.1f} MB",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory() as workdir:
        rows = evaluate(table, args.thresholds, Path(workdir))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    print(markdown(rows))


if __name__ == "__main__":
    main()
