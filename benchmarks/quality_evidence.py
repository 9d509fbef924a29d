"""Evidence that the LM measures quality: shuffle test, prose vs low-value text, histograms per bucket.

Why: a perplexity filter is only worth its cost if low perplexity means well-formed text. On
real text from this machine (quality_corpus.py), with an LM `corpusmill lm train` made from
the prose training set (benchmarks/quality.py lm-train), this measures:

(a) shuffle test: held-out prose paragraphs (never in the LM's training text) against the
    same words shuffled within the paragraph (each line keeps its word count); the share of
    pairs where the real paragraph has the lower perplexity;
(b) held-out prose against five kinds of low-value text (changelogs, UI-string catalogs,
    file lists, licence boilerplate, tables), run through `corpusmill quality` with the LM
    card's cut-offs: ROC AUC of ``ppl`` (low-value as the positive class), overall and per
    kind, and the share of each kind landing in ``tail`` and in ``low``;
(c) perplexity histograms per ``ppl_bucket`` and per ``quality_bucket``.

    .venv/bin/python benchmarks/quality_evidence.py --work bench_data/quality --lm bench_data/quality/lm-100000000
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from corpusmill.curation.dataset import Dataset
from corpusmill.curation.quality.lm_card import LMDirectory
from corpusmill.curation.quality.perplexity import DocumentScorer
from scipy.stats import rankdata

CORPUSMILL = str(Path(sys.executable).parent / "corpusmill")
KINDS = ("prose", "changelog", "catalog", "file_list", "licence", "table")
MAX_PARAGRAPHS = 3000


def held_out_paragraphs(heldout: Path, seed: int) -> list[str]:
    """Runs of consecutive lines of at least 40 words from held-out prose documents."""
    paragraphs = []
    for text in Dataset.open(heldout).read_table(["text"])["text"].to_pylist():
        run: list[str] = []
        for line in text.splitlines():
            run.append(line)
            if sum(len(part.split()) for part in run) >= 40:
                paragraphs.append("\n".join(run))
                run = []
    paragraphs = list(dict.fromkeys(paragraphs))
    random.Random(seed).shuffle(paragraphs)
    return paragraphs[:MAX_PARAGRAPHS]


def shuffled_keeping_lines(paragraph: str, rng: random.Random) -> str:
    """The paragraph's words in a random order, each line keeping its number of words."""
    lines = [line.split() for line in paragraph.splitlines()]
    words = [word for line in lines for word in line]
    rng.shuffle(words)
    out, position = [], 0
    for line in lines:
        out.append(" ".join(words[position : position + len(line)]))
        position += len(line)
    return "\n".join(out)


def shuffle_test(scorer: DocumentScorer, paragraphs: list[str], seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    real = scorer.perplexities(paragraphs)
    shuffled = scorer.perplexities([shuffled_keeping_lines(p, rng) for p in paragraphs])
    return {
        "pairs": len(paragraphs),
        "real_lower": float(np.mean(real < shuffled)),
        "median_real": float(np.median(real)),
        "median_shuffled": float(np.median(shuffled)),
        "median_ratio": float(np.median(shuffled / real)),
    }


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counted half (Mann-Whitney U / (n_pos n_neg))."""
    ranks = rankdata(np.concatenate([positive, negative]))
    u = ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2
    return float(u / (len(positive) * len(negative)))


def run_quality(work: Path, lm: Path) -> pa.Table:
    """held-out prose + low-value kinds through `corpusmill quality`, card cut-offs, rules on."""
    data = work / "evidence-input"
    data.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus"
    tables = [pq.read_table(p) for part in ("heldout", "lowvalue") for p in sorted((corpus / part).glob("*.parquet"))]
    table = pa.concat_tables(tables, promote_options="permissive")
    for index, start in enumerate(range(0, table.num_rows, 2000)):
        pq.write_table(table.slice(start, 2000), data / f"part-{index:03d}.parquet")
    out = work / "evidence-quality"
    subprocess.run(
        [CORPUSMILL, "quality", str(data), "--out", str(out), "--lm", str(lm), "--num-cpus", "2"], check=True
    )
    return Dataset.open(out).read_table(["id", "kind", "ppl", "ppl_bucket", "quality_bucket", "quality_reasons"])


def separation(table: pa.Table) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    kinds = np.array(table["kind"].to_pylist())
    ppl = table["ppl"].to_numpy(zero_copy_only=False).astype(float)
    buckets = np.array(table["ppl_bucket"].to_pylist(), dtype=object)
    quality = np.array(table["quality_bucket"].to_pylist(), dtype=object)
    prose = ppl[kinds == "prose"]
    aucs = {"all low-value": roc_auc(ppl[kinds != "prose"], prose)}
    own_tail = np.nanpercentile(ppl, 60)  # --cutoffs input on this evaluation set
    reasons = np.array([bool(r) for r in table["quality_reasons"].to_pylist()])
    shares = {}
    for kind in KINDS:
        mask = kinds == kind
        if kind != "prose":
            aucs[kind] = roc_auc(ppl[mask], prose)
        shares[kind] = {
            "documents": int(mask.sum()),
            "median_ppl": float(np.median(ppl[mask])),
            "tail": float(np.mean(buckets[mask] == "tail")),
            "low": float(np.mean(quality[mask] == "low")),
            "high": float(np.mean(quality[mask] == "high")),
            "input_tail": float(np.mean(ppl[mask] >= own_tail)),
            "input_low": float(np.mean((ppl[mask] >= own_tail) | reasons[mask])),
            "reasons": float(np.mean(reasons[mask])),
        }
    return aucs, shares


def histograms(table: pa.Table, column: str, values: tuple[str, ...], width: int = 40) -> str:
    """log10(ppl) histograms, one block per value of ``column``, bars scaled to the largest bin."""
    ppl = table["ppl"].to_numpy(zero_copy_only=False).astype(float)
    labels = np.array(table[column].to_pylist(), dtype=object)
    kinds = np.array(table["kind"].to_pylist(), dtype=object)
    edges = np.arange(0.0, 4.01, 0.25)
    blocks = []
    for value in values:
        mask = (labels == value) & np.isfinite(ppl)
        counts, _ = np.histogram(np.log10(ppl[mask]), bins=edges)
        top = max(counts.max(), 1)
        mix = Counter(kinds[mask])
        lines = [
            f"{column} = {value}: {mask.sum():,} documents ({', '.join(f'{k} {n}' for k, n in mix.most_common())})"
        ]
        for low, count in zip(edges[:-1], counts):
            lines.append(
                f"  ppl {10**low:>7,.0f}-{10 ** (low + 0.25):<7,.0f} {'#' * round(width * count / top):<{width}} {count}"
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def report(shuffle: dict[str, float], aucs: dict[str, float], shares: dict, table: pa.Table, card: dict) -> str:
    lines = [
        (
            f"LM: {card['order']}-gram over {card['pieces']:,} pieces, trained on {card['corpus']['documents']:,} "
            f"documents ({card['corpus']['bytes'] / 1e6:,.0f} MB) of prose; card cut-offs (held-out p30 / p60): "
            f"{card['ppl_percentiles'][30]:,.1f} / {card['ppl_percentiles'][60]:,.1f}."
        ),
        "",
        (
            f"(a) Shuffle test, {shuffle['pairs']:,} held-out paragraphs: the real paragraph has the lower perplexity "
            f"in **{shuffle['real_lower']:.2%}** of pairs (median ppl {shuffle['median_real']:,.0f} real, "
            f"{shuffle['median_shuffled']:,.0f} shuffled; median ratio {shuffle['median_ratio']:.1f}x)."
        ),
        "",
        "(b) Held-out prose against low-value text, ROC AUC of `ppl` (low-value = positive):",
        "",
        "| low-value kind | ROC AUC |",
        "| --- | --- |",
        *(f"| {kind} | {auc:.3f} |" for kind, auc in aucs.items()),
        "",
        "Shares per kind, with the card's cut-offs (the default) and with the evaluation set's own "
        "(`--cutoffs input`: tail = ppl at or above its 60th percentile; low = tail or any rule reason):",
        "",
        "| kind | documents | median ppl | any rule reason | `tail` (card) | `low` (card) | `high` (card) "
        "| `tail` (input) | `low` (input) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *(
            f"| {kind} | {s['documents']:,} | {s['median_ppl']:,.0f} | {s['reasons']:.1%} | {s['tail']:.1%} "
            f"| {s['low']:.1%} | {s['high']:.1%} | {s['input_tail']:.1%} | {s['input_low']:.1%} |"
            for kind, s in shares.items()
        ),
        "",
        "(c) Perplexity histograms per bucket:",
        "",
        "```",
        histograms(table, "ppl_bucket", ("head", "middle", "tail")),
        "",
        histograms(table, "quality_bucket", ("high", "medium", "low")),
        "```",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("bench_data/quality"))
    parser.add_argument("--lm", type=Path, default=Path("bench_data/quality/lm-100000000"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    lm = LMDirectory.open(args.lm)
    shuffle = shuffle_test(
        DocumentScorer.open(lm), held_out_paragraphs(args.work / "corpus" / "heldout", args.seed), args.seed
    )
    table = run_quality(args.work, args.lm)
    aucs, shares = separation(table)
    text = report(shuffle, aucs, shares, table, lm.card.to_dict())
    (args.work / "evidence.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
