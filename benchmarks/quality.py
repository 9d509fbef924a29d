"""Quality benchmarks: `corpusmill quality` against a direct loop, and `corpusmill lm train` at two sizes.

Why: the stage's per-document work is datatrove's filters and a KenLM query; what the stage
adds (Ray, Parquet, Arrow) must cost little. The named baseline is the loop a user would
write without corpusmill: for each document, the same CCNet normalisation, SentencePiece and
``kenlm.Model.score`` per line, and datatrove's four filters called on ``Document`` objects;
no Ray, no Parquet. Both sides see the same documents (held-out prose and the low-value
kinds of quality_corpus.py), and the goal is the stage at >= 0.8x the loop's rate per core.

Every measured command runs in its own subprocess; CPU time is that of its whole process
tree (Ray's workers included; the benchmark is a child subreaper so detached Ray helpers stay
in the tree), sampled with psutil (exact_dedup.py's sampler), as is the tree's peak RSS.
The machine is shared with other work: per-core rates (docs / CPU-second) are the figures
to compare, wall times are noisy.

    .venv/bin/python benchmarks/quality.py speed --work bench_data/quality
    .venv/bin/python benchmarks/quality.py lm-train --work bench_data/quality --sizes 100M,1G
    .venv/bin/python benchmarks/quality.py direct-loop DATASET LM_DIR {rules,ppl}   (the measured baseline)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from glob import glob
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash
from exact_dedup import _become_subreaper, measure

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUSMILL = str(Path(sys.executable).parent / "corpusmill")
CODE_ROOTS = ("/work/main/.venv/lib", "/root/.pyenv/versions", "/usr/include", "/usr/share", "/usr/lib")
CODE_SUFFIXES = (".py", ".h", ".c", ".cc", ".hpp", ".js", ".rst", ".md", ".txt", ".pl", ".pm", ".sh", ".go", ".rs")


def machine() -> str:
    return (
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"{psutil.virtual_memory().total / 2**30:.1f} GiB RAM, {platform.platform()}; shared with other helpers' work"
    )


def parse_size(text: str) -> int:
    units = {"K": 10**3, "M": 10**6, "G": 10**9}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units else int(text)


# --- lm train ----------------------------------------------------------------------------------


def bulk_corpus(work: Path, size: int) -> tuple[Path, dict[str, int]]:
    """``size`` bytes of real text: the prose training set first, then the machine's source and doc files."""
    out = work / f"bulk-{size}"
    if (out / "composition.json").exists():
        return out, json.loads((out / "composition.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    composition: dict[str, int] = {}
    total = 0
    part = 0
    batch_bytes = 0
    seen: set[int] = set()
    batch: dict[str, list[str]] = {"id": [], "text": [], "source": []}

    def add(doc_id: str, text: str, source: str) -> None:
        nonlocal total, part, batch, batch_bytes
        batch["id"].append(doc_id)
        batch["text"].append(text)
        batch["source"].append(source)
        nbytes = len(text.encode())
        total += nbytes
        batch_bytes += nbytes
        composition[source] = composition.get(source, 0) + nbytes
        if batch_bytes >= 64_000_000:  # one shard per 64 MB: bounded memory here, several units there
            pq.write_table(pa.table(batch), out / f"part-{part:05d}.parquet")
            part, batch, batch_bytes = part + 1, {"id": [], "text": [], "source": []}, 0

    for shard in sorted((work / "corpus" / "train").glob("*.parquet")):
        for row in pq.read_table(shard, columns=["id", "text", "source"]).to_pylist():
            if total >= size:
                break
            seen.add(xxhash.xxh64_intdigest(row["text"]))
            add(row["id"], row["text"], f"prose:{row['source']}")
    for root in CODE_ROOTS:
        if total >= size:
            break
        for path in sorted(glob(f"{root}/**/*", recursive=True)):
            if total >= size:
                break
            if not path.endswith(CODE_SUFFIXES) or not os.path.isfile(path) or os.path.getsize(path) > 1_000_000:
                continue
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            digest = xxhash.xxh64_intdigest(text)
            if text.strip() and "\x00" not in text and digest not in seen:
                seen.add(digest)
                add(path, text, f"files:{Path(path).suffix}")
    if batch["id"]:
        pq.write_table(pa.table(batch), out / f"part-{part:05d}.parquet")
    composition["total"] = total
    (out / "composition.json").write_text(json.dumps(composition, indent=1))
    return out, composition


def bench_lm_train(work: Path, sizes: list[int], memory: str, extra: list[str]) -> list[dict]:
    results = []
    for size in sizes:
        corpus, composition = bulk_corpus(work, size)
        out = work / f"lm-{size}"
        command = [CORPUSMILL, "lm", "train", str(corpus), "--lang", "en", "--out", str(out), "--memory", memory,
                   "--overwrite", *extra]  # fmt: skip
        usage = measure(command, work / f"lm-{size}.log")
        card = json.loads((out / "card.json").read_text())
        steps = card["training"]["steps"]
        result = {
            "size": composition["total"],
            "composition": composition,
            "command": " ".join(command[1:]),
            "wall_s": round(usage.wall_s, 1),
            "cpu_s": round(usage.cpu_s, 1),
            "tree_peak_rss": usage.peak_rss,
            "tree_peak_pss": usage.peak_pss,
            "steps": {name: {k: v for k, v in step.items() if k != "command"} for name, step in steps.items()},
            "pieces_of_text": card["corpus"]["pieces"],
            "arpa_bytes": card["training"]["arpa_bytes"],
            "lm_bytes": card["lm_bytes"],
        }
        print(json.dumps(result), file=sys.stderr)
        results.append(result)
    return results


def lm_train_table(results: list[dict]) -> str:
    lines = [
        "| text | wall | CPU (tree) | peak RSS (tree) | read+normalise | SentencePiece | lmplz (peak) | build_binary (peak) | percentiles | ARPA | lm.binary |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        s = r["steps"]
        lines.append(
            f"| {r['size'] / 1e6:,.0f} MB | {r['wall_s']:,.0f} s | {r['cpu_s']:,.0f} s | {r['tree_peak_rss'] / 2**30:.2f} GiB "
            f"| {s['read_and_normalize']['wall_seconds']:,.0f} s | {s['sentencepiece']['wall_seconds']:,.0f} s "
            f"({s['sentencepiece']['peak_rss_bytes'] / 2**30:.2f} GiB) "
            f"| {s['lmplz']['wall_seconds']:,.0f} s ({s['lmplz']['peak_rss_bytes'] / 2**30:.2f} GiB) "
            f"| {s['build_binary']['wall_seconds']:,.0f} s ({s['build_binary']['peak_rss_bytes'] / 2**30:.2f} GiB) "
            f"| {s['percentiles']['wall_seconds']:,.0f} s | {r['arpa_bytes'] / 1e9:.2f} GB | {r['lm_bytes'] / 1e9:.2f} GB |"
        )
    return "\n".join(lines)


# --- quality speed -----------------------------------------------------------------------------


def direct_loop(dataset: Path, lm_dir: Path, mode: str) -> None:
    """The measured baseline: plain Python over the documents, the field's libraries called directly."""
    import kenlm
    import sentencepiece as spm
    from corpusmill.curation.quality.normalize import normalized_lines
    from datatrove.data import Document
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    texts = [
        t
        for shard in sorted(dataset.glob("*.parquet"))
        for t in pq.read_table(shard, columns=["text"])["text"].to_pylist()
    ]
    pieces = spm.SentencePieceProcessor(model_file=str(lm_dir / "pieces.model"), num_threads=1)
    model = kenlm.Model(str(lm_dir / "lm.binary"))
    filters = (
        [GopherQualityFilter(), GopherRepetitionFilter(), C4QualityFilter(), FineWebQualityFilter()]
        if mode == "rules"
        else []
    )
    started = time.process_time()
    failed = 0
    for index, text in enumerate(texts):
        log10, length = 0.0, 0
        for line in normalized_lines(text):
            line_pieces = pieces.encode(line, out_type=str)
            log10 += model.score(" ".join(line_pieces), bos=True, eos=True)
            length += len(line_pieces) + 1
        _ppl = 10 ** (-log10 / length) if length else None
        for datatrove_filter in filters:
            failed += datatrove_filter.filter(Document(text=text, id=str(index))) is not True
    print(json.dumps({"documents": len(texts), "loop_cpu_s": time.process_time() - started, "failed": failed}))


def bench_speed(work: Path, lm_dir: Path, rules_docs: int) -> list[dict]:
    """Both sides, with and without rules, on the same documents (a smaller set with rules: they are slow)."""
    corpus = work / "corpus"
    docs = pa.concat_tables(
        [pq.read_table(p) for part in ("heldout", "lowvalue") for p in sorted((corpus / part).glob("*.parquet"))],
        promote_options="permissive",
    )
    results = []
    for mode, count in (("ppl", docs.num_rows), ("rules", rules_docs)):
        subset = docs.slice(0, count) if count < docs.num_rows else docs
        data = work / f"speed-{mode}"
        data.mkdir(parents=True, exist_ok=True)
        for old in data.glob("*.parquet"):
            old.unlink()
        for index, start in enumerate(
            range(0, subset.num_rows, max(1, subset.num_rows // 4))
        ):  # 4 shards: 2 workers busy
            pq.write_table(subset.slice(start, max(1, subset.num_rows // 4)), data / f"part-{index}.parquet")
        nbytes = sum(len(t.encode()) for t in subset["text"].to_pylist())
        stage_cmd = [CORPUSMILL, "quality", str(data), "--out", str(work / f"speed-{mode}-out"), "--lm", str(lm_dir),
                     "--num-cpus", "2", "--overwrite", *([] if mode == "rules" else ["--no-rules"])]  # fmt: skip
        loop_cmd = [sys.executable, __file__, "direct-loop", str(data), str(lm_dir), mode]
        stage = measure(stage_cmd, work / f"speed-{mode}-stage.log")
        loop = measure(loop_cmd, work / f"speed-{mode}-loop.log")
        loop_inner = json.loads((work / f"speed-{mode}-loop.log").read_text().strip().splitlines()[-1])
        result = {
            "mode": mode, "documents": subset.num_rows, "bytes": nbytes,
            "stage": {"wall_s": stage.wall_s, "cpu_s": stage.cpu_s, "peak_rss": stage.peak_rss},
            "loop": {"wall_s": loop.wall_s, "cpu_s": loop.cpu_s, "inner_cpu_s": loop_inner["loop_cpu_s"]},
            "stage_command": " ".join(stage_cmd[1:]),
        }  # fmt: skip
        print(json.dumps(result), file=sys.stderr)
        results.append(result)
    return results


def speed_table(results: list[dict]) -> str:
    lines = [
        "| rules | documents | MB | side | wall | CPU (tree) | docs / CPU-s | MB / CPU-s | stage / loop per core |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        mb = r["bytes"] / 1e6
        loop_rate = r["documents"] / r["loop"]["cpu_s"]
        for side in ("stage", "loop"):
            cpu = r[side]["cpu_s"]
            ratio = f"{(r['documents'] / cpu) / loop_rate:.2f}x" if side == "stage" else ""
            name = "corpusmill quality (Ray, 2 workers)" if side == "stage" else "direct loop (1 process)"
            lines.append(
                f"| {'yes' if r['mode'] == 'rules' else 'no'} | {r['documents']:,} | {mb:,.1f} | {name} | {r[side]['wall_s']:,.1f} s "
                f"| {cpu:,.1f} s | {r['documents'] / cpu:,.1f} | {mb / cpu:.3f} | {ratio} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    speed = sub.add_parser("speed")
    speed.add_argument("--work", type=Path, default=REPO_ROOT / "bench_data" / "quality")
    speed.add_argument("--lm", type=Path, default=None, help="LM directory (default: WORK/lm-<prose size>)")
    speed.add_argument("--rules-docs", type=int, default=1500)
    train = sub.add_parser("lm-train")
    train.add_argument("--work", type=Path, default=REPO_ROOT / "bench_data" / "quality")
    train.add_argument("--sizes", default="100M,1G")
    train.add_argument("--memory", default="4G")
    train.add_argument("extra", nargs="*", help="more `lm train` options, after --")
    loop = sub.add_parser("direct-loop")
    loop.add_argument("dataset", type=Path)
    loop.add_argument("lm", type=Path)
    loop.add_argument("rules", choices=("rules", "ppl"))
    args = parser.parse_args()
    if args.mode == "direct-loop":
        direct_loop(args.dataset, args.lm, args.rules)
        return
    _become_subreaper()
    print(f"machine: {machine()}")
    if args.mode == "lm-train":
        results = bench_lm_train(args.work, [parse_size(s) for s in args.sizes.split(",")], args.memory, args.extra)
        (args.work / "lm_train.json").write_text(json.dumps(results, indent=1))
        print(lm_train_table(results))
    else:
        lm = args.lm or next(iter(sorted(args.work.glob("lm-*"))))
        results = bench_speed(args.work, lm, args.rules_docs)
        (args.work / "speed.json").write_text(json.dumps(results, indent=1))
        print(speed_table(results))


if __name__ == "__main__":
    main()
