"""`corpusmill dedup fuzzy`: near-duplicate removal with MinHash, LSH and connected components.

Resumable phases over Ray, each unit holding one input shard or one hash partition:
  signatures  per shard: MinHash signatures -> band keys, partitioned by key; the
              shard's sketches (shingle sets or signatures) and ids, for lookups
  pairs       per partition: documents sharing a band key -> candidate pairs,
              partitioned by pair
  verify      per partition: distinct pairs, Jaccard from the sketches, keep
              those >= threshold as edges, partitioned by node
  components  one unit (scipy) when the edges are few, else large-star /
              small-star rounds, one unit per partition, until nothing changes
  clusters    per partition: each component's smallest id; members partitioned
              by the shard they live in
  filter      per shard: drop members other than their component's smallest id
Nothing is collected on the driver and no unit holds more than one partition or
one shard, so the result is the same for any number of partitions or workers.
Documents are numbered (shard index << 32 | row): stable for a given input.

The numba kernels (shingling, MinHash, band keys, Jaccard) are imported by the code
that runs them, not at the top: the CLI imports this module for its options on every
command, and numba is about 75 MiB and 0.3 CPU-s of each process that loads it.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpusmill.curation.atomic import atomic_path
from corpusmill.curation.command import StageCommand
from corpusmill.curation.dataset import (
    DEFAULT_SHARD_BYTES,
    Dataset,
    Manifest,
    ShardInfo,
    concatenate_parquet,
    write_part,
)
from corpusmill.curation.shard_map import remove_rows
from corpusmill.curation.dedup.components import (
    both_directions,
    components_single_node,
    large_star,
    small_star,
    star_membership,
)
from corpusmill.curation.dedup.banding import DEFAULT_BUCKET_WINDOW, RECALL_WEIGHTS, check_bands, optimal_bands
from corpusmill.curation.documents import (
    check_document_columns,
    conform_documents,
    invalid_reasons,
)
from corpusmill.curation.errors import ConfigError
from corpusmill.curation.executor import Executor
from corpusmill.curation.options import option
from corpusmill.curation.partition import (
    check_partitions,
    hash_partition,
    partitions_for,
    read_all,
    read_partition,
    write_partitioned,
)
from corpusmill.curation.stage import StageRun, shard_units
from corpusmill.curation.stats import StageStats
from corpusmill.curation.unit_outputs import UnitOutputs

if TYPE_CHECKING:
    from corpusmill.curation.dedup.minhash import MinHasher

STAGE = "dedup_fuzzy"
REASON = "near_duplicate"
CLUSTERS_FILE = "clusters.parquet"
CLUSTERS_SCHEMA = pa.schema([("id", pa.string()), ("cluster_id", pa.string())])
SINGLE_NODE_MAX_EDGES = 20_000_000
MAX_STAR_ROUNDS = 200
ROW_BITS = 32
ROW_MASK = (1 << ROW_BITS) - 1
VERIFY_MODES = ("exact", "estimate")  # see curation/dedup/verify.py


@dataclass(frozen=True, kw_only=True)
class FuzzyConfig:
    """What decides the result; recorded in the manifest (bands and rows resolved) and checked on resume."""

    threshold: float = option(0.8, help="Jaccard similarity of near-duplicates (default 0.8)")
    ngram: int = option(5, help="words per shingle (default 5)")
    num_perm: int = option(128, help="MinHash permutations (default 128)")
    seed: int = option(1, help="MinHash permutation seed (default 1)")
    bands: int | None = option(
        None, help="LSH bands (default: datasketch's optimisation for the threshold, misses weighted 0.98 vs 0.02)"
    )
    rows: int | None = option(None, help="signature rows per band (give with --bands)")
    verify: str = option(
        "exact",
        choices=VERIFY_MODES,
        help="check candidate pairs by exact shingle-set Jaccard (default) or the cheaper signature estimate",
    )
    bucket_window: int = option(
        DEFAULT_BUCKET_WINDOW,
        help="pair each document of an LSH bucket with the next N (all pairs of buckets up to N+1 documents)",
    )

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError(f"--threshold must be in (0, 1], got {self.threshold}")
        if self.ngram < 1 or self.num_perm < 2 or self.bucket_window < 1:
            raise ConfigError(
                f"need --ngram >= 1, --num-perm >= 2 and --bucket-window >= 1; "
                f"got {self.ngram}, {self.num_perm} and {self.bucket_window}"
            )
        if self.verify not in VERIFY_MODES:
            raise ConfigError(f"--verify must be one of {VERIFY_MODES}, got {self.verify!r}")
        if (self.bands is None) != (self.rows is None):
            raise ConfigError("give both --bands and --rows, or neither to derive them from --threshold")
        if self.bands is not None and self.rows is not None:
            check_bands(self.bands, self.rows, self.num_perm)

    def resolved(self) -> FuzzyConfig:
        """These settings alone (no other stage options), bands and rows derived from the threshold unless given."""
        settings = {field.name: getattr(self, field.name) for field in fields(FuzzyConfig)}
        if self.bands is None or self.rows is None:
            settings["bands"], settings["rows"] = optimal_bands(self.threshold, self.num_perm, RECALL_WEIGHTS)
        return FuzzyConfig(**settings)

    @property
    def hasher(self) -> MinHasher:
        from corpusmill.curation.dedup.minhash import MinHasher

        return MinHasher(num_perm=self.num_perm, seed=self.seed, ngram=self.ngram)


@dataclass(frozen=True, kw_only=True)
class DedupFuzzyOptions(FuzzyConfig):
    """`corpusmill dedup fuzzy IN --out OUT [...]`: the settings of FuzzyConfig plus where and how to run."""

    input: str = option(positional=True, help="input dataset directory")
    out: str = option(help="output dataset directory")
    partitions: int | None = option(
        None,
        help="hash partitions of the shuffles (default: one per 2M band rows); "
        "changes memory per task, never the result",
    )
    single_node_max_edges: int = option(
        SINGLE_NODE_MAX_EDGES,
        help="verified pairs up to which components run on one worker with scipy; above, distributed large/small-star",
    )


def route(keys: np.ndarray, num_partitions: int) -> np.ndarray:
    """Partition of each key after fmix64, which spreads structured keys (document numbers)."""
    from corpusmill.curation.dedup.shingles import fmix64_array

    return (fmix64_array(keys) % np.uint64(num_partitions)).astype(np.int64)


def _int64_table(**columns: np.ndarray) -> pa.Table:
    return pa.table({name: pa.array(np.asarray(values, dtype=np.int64)) for name, values in columns.items()})


def _columns(table: pa.Table | None, *names: str) -> list[np.ndarray]:
    if table is None:
        return [np.zeros(0, dtype=np.int64) for _ in names]
    return [table[name].to_numpy() for name in names]


@dataclass(frozen=True)
class _Plan:
    dataset: Dataset  # as the driver opened it: units never re-scan the input
    config: FuzzyConfig  # resolved: bands and rows are set
    num_partitions: int
    max_shard_bytes: int

    @property
    def num_shards(self) -> int:
        return len(self.dataset.shards)

    def shard(self, index: int) -> tuple[Dataset, ShardInfo]:
        return self.dataset, self.dataset.shards[index]


def _sketch_path(run: StageRun, shard_index: int) -> Path:
    return run.work_dir("signatures") / f"s{shard_index:05d}.sketch.arrow"


def lookup(run: StageRun, docs: np.ndarray, column: str) -> pa.Array:
    """``column`` of the shard sketch files for sorted, distinct document numbers.

    The files are memory-mapped, so only the pages of the rows taken are read.
    """
    shards = docs >> ROW_BITS
    pieces = []
    for shard in np.unique(shards):
        first, last = np.searchsorted(shards, [shard, shard + 1])
        table = read_all(_sketch_path(run, int(shard)))
        pieces.append(table[column].take(pa.array(docs[first:last] & ROW_MASK)).combine_chunks())
    if not pieces:
        return pa.array([], read_all(_sketch_path(run, 0)).schema.field(column).type)
    return pa.concat_arrays(pieces)


@dataclass(frozen=True)
class _SignShard:
    """Signatures and band keys of one shard, plus its sketch file."""

    plan: _Plan

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        from corpusmill.curation.dedup.lsh import band_keys
        from corpusmill.curation.dedup.shingles import sets_of_hashes, shingle_hashes

        config = self.plan.config
        dataset, shard = self.plan.shard(unit["index"])
        hasher = config.hasher
        keys, docs = [], []
        without_shingles = 0
        sketch_schema = self._sketch_schema(hasher)
        with atomic_path(_sketch_path(run, unit["index"])) as tmp, pa.OSFile(str(tmp), "wb") as sink:
            with pa.ipc.new_file(sink, sketch_schema) as writer:
                for batch, numbers in dataset.iter_numbered_batches(shard, columns=["id", "text", "source"]):
                    batch = conform_documents(batch, STAGE).combine_chunks()
                    valid = pc.is_null(invalid_reasons(batch))
                    hashes, offsets = shingle_hashes(pc.if_else(valid, batch["text"], ""), config.ngram)
                    signatures = hasher.signatures_of_hashes(hashes, offsets)
                    has_shingles = np.diff(offsets) > 0
                    without_shingles += int(np.count_nonzero(valid.to_numpy() & ~has_shingles))
                    rows = numbers[has_shingles]
                    keys.append(band_keys(signatures[has_shingles], config.bands, config.rows).ravel())
                    docs.append(np.repeat((unit["index"] << ROW_BITS) | rows, config.bands))
                    sketch = (
                        sets_of_hashes(hashes, offsets)
                        if config.verify == "exact"
                        else pa.FixedSizeListArray.from_arrays(pa.array(signatures.ravel()), config.num_perm)
                    )
                    ids = pc.if_else(valid, batch["id"], pa.scalar(None, pa.string())).combine_chunks()
                    writer.write_batch(pa.RecordBatch.from_arrays([ids, sketch], schema=sketch_schema))
        band_rows = _int64_table(doc=np.concatenate(docs) if docs else np.zeros(0))
        band_rows = band_rows.append_column("key", pa.array(np.concatenate(keys) if keys else np.zeros(0, np.uint64)))
        path = run.work_dir("signatures") / f"{unit['unit_id']}.bands.arrow"
        num_partitions = self.plan.num_partitions
        write_partitioned(path, band_rows, hash_partition(band_rows["key"], num_partitions), num_partitions)
        return {
            "unit_id": unit["unit_id"],
            "band_rows": band_rows.num_rows,
            "documents_without_shingles": without_shingles,
        }

    def _sketch_schema(self, hasher: MinHasher) -> pa.Schema:
        if self.plan.config.verify == "exact":
            sketch_type = pa.large_list(pa.uint64())
        else:
            sketch_type = pa.list_(pa.from_numpy_dtype(hasher.dtype), hasher.num_perm)
        return pa.schema([("id", pa.string()), ("sketch", sketch_type)])


@dataclass(frozen=True)
class _PairPartition:
    """Band buckets of one key partition -> candidate pairs, routed by pair."""

    plan: _Plan

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        from corpusmill.curation.dedup.lsh import bucket_pairs, unique_pairs
        from corpusmill.curation.dedup.shingles import fmix64_array

        rows = read_partition(sorted(run.work_dir("signatures").glob("*.bands.arrow")), unit["partition"])
        docs, keys = _columns(rows, "doc", "key")
        left, right = unique_pairs(*bucket_pairs(keys.astype(np.uint64), docs, self.plan.config.bucket_window))
        pair_keys = fmix64_array(left) ^ right.astype(np.uint64)
        path = run.work_dir("pairs") / f"{unit['unit_id']}.arrow"
        write_partitioned(
            path,
            _int64_table(left=left, right=right),
            route(pair_keys, self.plan.num_partitions),
            self.plan.num_partitions,
        )
        return {"unit_id": unit["unit_id"], "bucket_pairs": int(left.size)}


@dataclass(frozen=True)
class _VerifyPartition:
    """Distinct candidate pairs of one partition -> verified edges, routed by node."""

    plan: _Plan

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        from corpusmill.curation.dedup.lsh import unique_pairs

        pairs = read_partition(sorted(run.work_dir("pairs").glob("*.arrow")), unit["partition"])
        left, right = unique_pairs(*_columns(pairs, "left", "right"))
        similar = self._similar(run, left, right)
        src, dst = both_directions(left[similar], right[similar])
        path = run.work_dir("verify") / f"{unit['unit_id']}.arrow"
        write_partitioned(
            path, _int64_table(src=src, dst=dst), route(src, self.plan.num_partitions), self.plan.num_partitions
        )
        verified = int(np.count_nonzero(similar))
        return {"unit_id": unit["unit_id"], "examined": int(left.size), "verified": verified}

    def _similar(self, run: StageRun, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        from corpusmill.curation.dedup.verify import estimated_jaccard, exact_jaccard

        config = self.plan.config
        needed = np.unique(np.concatenate([left, right]))
        sketches = lookup(run, needed, "sketch")
        left_at, right_at = np.searchsorted(needed, left), np.searchsorted(needed, right)
        if config.verify == "exact":
            similarity = exact_jaccard(sketches, left_at, right_at)
        else:
            signatures = sketches.flatten().to_numpy().reshape(-1, config.num_perm)
            similarity = estimated_jaccard(signatures, left_at, right_at)
        return similarity >= config.threshold


@dataclass(frozen=True)
class _SingleNodeComponents:
    """All verified edges on one worker: scipy components, written as converged stars."""

    plan: _Plan

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        edges = [read_all(path) for path in sorted(run.work_dir("verify").glob("*.arrow"))]
        src, dst = _columns(pa.concat_tables(edges) if edges else None, "src", "dst")
        once = src < dst
        members, roots = components_single_node(src[once], dst[once])
        leaf = members != roots
        star_src, star_dst = both_directions(roots[leaf], members[leaf])
        path = run.work_dir("components") / f"{unit['unit_id']}.arrow"
        num_partitions = self.plan.num_partitions
        write_partitioned(
            path, _int64_table(src=star_src, dst=star_dst), route(star_src, num_partitions), num_partitions
        )
        return {"unit_id": unit["unit_id"]}


@dataclass(frozen=True)
class _StarStep:
    """One large-star or small-star step on one partition of the edges."""

    plan: _Plan
    source_phase: str
    target_phase: str
    large: bool

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        edges = read_partition(sorted(run.work_dir(self.source_phase).glob("*.arrow")), unit["partition"])
        if self.large:
            larger, smaller, changes = large_star(*_columns(edges, "src", "dst"))
            table, keys = _int64_table(larger=larger, smaller=smaller), larger
        else:
            src, dst, changes = small_star(*_columns(edges, "larger", "smaller"))
            table, keys = _int64_table(src=src, dst=dst), src
        num_partitions = self.plan.num_partitions
        path = run.work_dir(self.target_phase) / f"{unit['unit_id']}.arrow"
        write_partitioned(path, table, route(keys, num_partitions), num_partitions)
        return {"unit_id": unit["unit_id"], "changes": changes}


@dataclass(frozen=True)
class _ClusterPartition:
    """Components rooted in one partition: smallest id per component, routed by shard."""

    plan: _Plan
    source_phase: str

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        edges = read_partition(sorted(run.work_dir(self.source_phase).glob("*.arrow")), unit["partition"])
        members, roots = star_membership(*_columns(edges, "src", "dst"))
        distinct_members = np.unique(members)
        ids = lookup(run, distinct_members, "id").take(pa.array(np.searchsorted(distinct_members, members)))
        table = pa.table({"member": members, "root": roots, "id": ids})
        grouped = table.group_by("root").aggregate([("id", "min"), ("member", "count")])
        smallest = pa.table({"root": grouped["root"], "cluster_id": grouped["id_min"], "size": grouped["member_count"]})
        table = table.join(smallest, "root").sort_by([("root", "ascending"), ("member", "ascending")])
        member_numbers = table["member"].to_numpy()
        rows = pa.table(
            {
                "row": pa.array(member_numbers & ROW_MASK),
                "id": table["id"],
                "cluster_id": table["cluster_id"],
            }
        )
        path = run.work_dir("clusters") / f"{unit['unit_id']}.arrow"
        write_partitioned(path, rows, member_numbers >> ROW_BITS, self.plan.num_shards)
        return {"unit_id": unit["unit_id"], "component_sizes": smallest["size"].to_pylist()}


@dataclass(frozen=True)
class _FilterShard:
    """Drop one shard's near-duplicates; keep everything else in input order."""

    plan: _Plan

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        dataset, shard = self.plan.shard(unit["index"])
        members = read_partition(sorted(run.work_dir("clusters").glob("*.arrow")), unit["index"])
        if members is None:
            members = pa.table(
                {
                    "row": pa.array([], pa.int64()),
                    "id": pa.array([], pa.string()),
                    "cluster_id": pa.array([], pa.string()),
                }
            )
        members = members.sort_by("row")
        removed = pc.not_equal(members["id"], members["cluster_id"])
        removed_rows = members["row"].filter(removed).to_numpy()
        outputs = UnitOutputs(run, unit["unit_id"], self.plan.max_shard_bytes)
        remove_rows(dataset, shard, outputs, removed_rows, REASON)
        if members.num_rows:
            clusters = members.select(["id", "cluster_id"])
            write_part(run.work_dir("filter") / f"{unit['unit_id']}.clusters.parquet", clusters, CLUSTERS_SCHEMA)
        return outputs.record()


def _partition_units(num_partitions: int) -> list[dict[str, Any]]:
    return [{"unit_id": f"p{p:05d}", "partition": p} for p in range(num_partitions)]


def _components(
    run: StageRun,
    plan: _Plan,
    verified_edges: int,
    single_node_max_edges: int,
    executor: Executor,
    counters: StageStats,
) -> str:
    """Run the components phases; return the phase whose output holds converged stars."""
    if verified_edges <= single_node_max_edges:
        run.run_phase("components", [{"unit_id": "all"}], _SingleNodeComponents(plan), executor)
        counters.count("components_single_node")
        return "components"
    units = _partition_units(plan.num_partitions)
    source = "verify"
    for round_number in range(MAX_STAR_ROUNDS):
        large_phase, small_phase = f"large-{round_number:03d}", f"small-{round_number:03d}"
        large = run.run_phase(large_phase, units, _StarStep(plan, source, large_phase, large=True), executor)
        small = run.run_phase(small_phase, units, _StarStep(plan, large_phase, small_phase, large=False), executor)
        for finished in {source, large_phase} - {"verify"}:  # inputs no later phase reads
            shutil.rmtree(run.work_dir(finished), ignore_errors=True)
        source = small_phase
        counters.count("components_star_rounds")
        if sum(r["changes"] for r in large) == 0 and sum(r["changes"] for r in small) == 0:
            return source
    raise RuntimeError(f"large-star/small-star did not converge in {MAX_STAR_ROUNDS} rounds; please report this input")


def _count_component_sizes(counters: StageStats, sizes: list[int]) -> None:
    """Histogram in power-of-two bins: component_size:2, :3-4, :5-8, ..."""
    for size in sizes:
        upper = 1 << max(1, (size - 1).bit_length())
        lower = upper // 2 + 1
        counters.count(f"component_size:{size}" if upper == 2 else f"component_size:{lower}-{upper}")
        counters.count("components")
        counters.count("documents_in_components", size)


def _write_clusters(run: StageRun, units: list[dict[str, Any]]) -> None:
    """The per-shard cluster lists, in shard order, as one file."""
    parts = [run.work_dir("filter") / f"{unit['unit_id']}.clusters.parquet" for unit in units]
    concatenate_parquet(parts, run.out / CLUSTERS_FILE, CLUSTERS_SCHEMA)


def dedup_fuzzy(options: DedupFuzzyOptions, *, executor: Executor, overwrite: bool = False) -> Manifest:
    """Remove near-duplicates of ``options.input`` into ``options.out``; see the module docstring."""
    check_partitions(options.partitions)
    config = options.resolved()
    dataset = Dataset.open(options.input)
    check_document_columns(dataset)  # fail here, with the fix, rather than inside a unit
    run_config = {"input": str(options.input), "input_fingerprint": dataset.fingerprint(), **asdict(config)}
    # Partitions and the components path change the scratch layout, never the result.
    run = StageRun(Path(options.out), STAGE, run_config, inputs=(str(options.input),))
    if (finished := run.claim(executor, overwrite)) is not None:
        return Manifest.from_dict(finished)
    num_partitions = run.pinned("partitions", options.partitions or partitions_for(dataset.num_rows * config.bands))
    plan = _Plan(dataset, config, num_partitions, DEFAULT_SHARD_BYTES)
    units = shard_units(dataset)
    partition_units = _partition_units(num_partitions)
    counters = StageStats(STAGE)
    counters.count("partitions", num_partitions)

    signed = run.run_phase("signatures", units, _SignShard(plan), executor)
    counters.count("documents_without_shingles", sum(r["documents_without_shingles"] for r in signed))
    paired = run.run_phase("pairs", partition_units, _PairPartition(plan), executor)
    counters.count("bucket_pairs", sum(r["bucket_pairs"] for r in paired))
    verified = run.run_phase("verify", partition_units, _VerifyPartition(plan), executor)
    examined, edges = sum(r["examined"] for r in verified), sum(r["verified"] for r in verified)
    counters.count("pairs_examined", examined)
    counters.count("pairs_verified", edges)
    counters.count("pairs_rejected", examined - edges)
    stars = _components(run, plan, edges, options.single_node_max_edges, executor, counters)
    clustered = run.run_phase("clusters", partition_units, _ClusterPartition(plan, stars), executor)
    _count_component_sizes(counters, [size for r in clustered for size in r["component_sizes"]])
    records = run.run_phase("filter", units, _FilterShard(plan), executor)
    _write_clusters(run, units)
    return run.finish(records, counters)


COMMANDS = [
    StageCommand(
        ("dedup", "fuzzy"),
        "remove near-duplicates: MinHash LSH, verified pairs, smallest id per component kept",
        DedupFuzzyOptions,
        dedup_fuzzy,
    )
]
