"""`corpusmill report RUN_DIR --out report.html`: what a pipeline run did, gathered from its steps' outputs.

The run's record (``RUN_DIR/pipeline_run.json``, written by ``corpusmill run``) names every step and
its output directory; each section of the report comes from the files the stages wrote
there, and only from them:

* funnel: every document step's ``stats.json`` (in, out, removed and rejected per reason),
  along the chain of steps that read each other's output;
* mix: the label columns of the last labelled dataset (``lang``, ``category``, ``code_lang``),
  and tokens per component from ``tokenized.json``;
* quality: the ``ppl``, ``ppl_bucket``, ``quality_bucket`` and ``quality_reasons`` columns of
  the first dataset that has ``ppl``, the cut-offs the stage applied (its ``cutoffs.json``), and
  each ``lm train`` card (reference dataset, size, percentiles);
* near-duplicates: ``clusters.parquet`` (and exact ``duplicates.parquet``) with the stage's
  counters;
* tokenizer: ``card.json`` and the evaluation's ``report.json``;
* blend: each ``trainer.json`` (one per resolved phase);
* training: ``metrics.jsonl`` of a train step (its phases named by its ``run.json``).

:func:`collect_report` returns all of it as JSON-able data (the report embeds it, and the
tests compare it with the files); ``pipelines.report_html`` draws it.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpusmill.curation.atomic import atomic_path, read_json
from corpusmill.curation.classify.labels import CATEGORY, CODE, CODE_LANG, ENGLISH, LANG, MULTILINGUAL, UNDETERMINED
from corpusmill.curation.command import TOOL, StageCommand
from corpusmill.curation.dataset import MANIFEST_FILE, STATS_FILE, Dataset
from corpusmill.curation.executor import Executor
from corpusmill.curation.options import option
from corpusmill.pipelines.runner import read_run_record
from corpusmill.trainer.config import METRICS_FILE

# Files the stages write, as the report finds them in a step's output directory.
CLUSTERS_FILE = "clusters.parquet"  # dedup fuzzy
DUPLICATES_FILE = "duplicates.parquet"  # dedup exact
CARD_FILE = "card.json"  # tokenizer train
EVAL_FILE = "report.json"  # tokenizer eval
TOKENIZED_FILE = "tokenized.json"  # tokenize
TRAINER_FILE = "trainer.json"  # blend resolve
TRAIN_RUN_FILE = "run.json"  # train: the run's settings, its phases named

# Columns of the quality stage.
PPL, PPL_BUCKET, QUALITY_BUCKET, QUALITY_REASONS = "ppl", "ppl_bucket", "quality_bucket", "quality_reasons"
PPL_BUCKETS = ("head", "middle", "tail")
CUTOFFS_FILE = "cutoffs.json"  # quality: per language the perplexities it applied, {"head": h, "tail": t, "source": ...}
CUTOFF_KEYS = ("head", "tail")  # head: ppl below h; tail: ppl at or above t
QUALITY_BUCKETS = ("high", "medium", "low")
MAX_BINS = 30
TOP_LANGUAGES = 12


@dataclass(frozen=True)
class StepFiles:
    """One step of the record and its output directory."""

    entry: dict[str, Any]

    @property
    def name(self) -> str:
        return self.entry["name"]

    @property
    def out(self) -> Path | None:
        return Path(self.entry["out"]) if self.entry.get("out") else None

    def file(self, name: str) -> Path | None:
        path = self.out / name if self.out else None
        return path if path is not None and path.exists() else None

    def json(self, name: str) -> dict[str, Any] | None:
        path = self.file(name)
        return read_json(path) if path else None

    def columns(self) -> dict[str, str]:
        manifest = self.json(MANIFEST_FILE)
        return manifest.get("columns", {}) if manifest else {}

    def reads_from(self, other: StepFiles) -> bool:
        if other.out is None:
            return False
        root = str(other.out)
        return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for path in self.entry.get("reads", []))


def _tally(data: dict[str, Any]) -> dict[str, int]:
    return {"docs": int(data["docs"]), "bytes": int(data["bytes"])}


# --- funnel ----------------------------------------------------------------------------------------


def document_chain(steps: list[StepFiles]) -> list[StepFiles]:
    """The longest chain of document steps each reading the one before (ties: the later step, the run's product)."""
    documents = [step for step in steps if step.file(STATS_FILE)]
    length: dict[str, int] = {}
    following: dict[str, StepFiles | None] = {}
    for index in range(len(documents) - 1, -1, -1):
        step = documents[index]
        readers = [other for other in documents[index + 1 :] if other.reads_from(step)]
        best = None
        for reader in readers:  # later readers win ties
            if best is None or length[reader.name] >= length[best.name]:
                best = reader
        following[step.name] = best
        length[step.name] = 1 + (length[best.name] if best else 0)
    roots = [step for step in documents if not any(step.reads_from(other) for other in documents)]
    if not roots:
        return []
    current: StepFiles | None = max(roots, key=lambda step: (length[step.name], -documents.index(step)))
    chain = []
    while current is not None:
        chain.append(current)
        current = following[current.name]
    return chain


def funnel_entry(step: StepFiles) -> dict[str, Any]:
    stats = step.json(STATS_FILE) or {}
    return {
        "step": step.name,
        "stage": step.entry["stage"],
        "in": _tally(stats["in"]),
        "out": _tally(stats["out"]),
        "removed": {reason: _tally(t) for reason, t in stats["removed"].items()},
        "rejected": {reason: _tally(t) for reason, t in stats["rejected"].items()},
        "where": step.entry.get("options", {}).get("where"),  # select: the predicate its removals failed
    }


# --- label mix -------------------------------------------------------------------------------------


def label_pairs(directory: Path) -> tuple[Counter[tuple[str, str]], Counter[str]]:
    """Documents per (category, lang), and code documents per programming language, of a labelled dataset."""
    dataset = Dataset.open(directory)
    pairs: Counter[tuple[str, str]] = Counter()
    code_langs: Counter[str] = Counter()
    for shard in dataset.shards:
        for batch in dataset.iter_batches(shard, columns=[CATEGORY, LANG, CODE_LANG]):
            category = pc.fill_null(batch[CATEGORY], UNDETERMINED)
            joined = pc.binary_join_element_wise(category, pc.fill_null(batch[LANG], UNDETERMINED), "\x1f")
            for entry in pc.value_counts(joined).to_pylist():
                category_value, lang_value = entry["values"].split("\x1f")
                pairs[(category_value, lang_value)] += entry["counts"]
            code = batch.filter(pc.equal(category, CODE))[CODE_LANG]
            for entry in pc.value_counts(pc.fill_null(code, UNDETERMINED)).to_pylist():
                code_langs[entry["values"]] += entry["counts"]
    return pairs, code_langs


def label_counts(step: StepFiles) -> dict[str, Counter[str]]:
    """Documents per category, per natural language of prose (code excluded) and per programming language."""
    pairs, code_langs = label_pairs(step.out)
    counts: dict[str, Counter[str]] = {CATEGORY: Counter(), LANG: Counter(), CODE_LANG: code_langs}
    for (category, lang), documents in pairs.items():
        counts[CATEGORY][category] += documents
        if category != CODE:
            counts[LANG][lang] += documents
    return counts


def label_section(chain: list[StepFiles], steps: list[StepFiles]) -> dict[str, Any] | None:
    labelled = [step for step in chain if {CATEGORY, LANG, CODE_LANG} <= set(step.columns())]
    tokenized = [step for step in steps if step.file(TOKENIZED_FILE)]
    if not labelled and not tokenized:
        return None
    section: dict[str, Any] = {"documents": None, "tokens": None}
    if labelled:
        step = labelled[-1]
        counts = label_counts(step)
        section["documents"] = {"step": step.name, **{column: dict(counts[column].most_common()) for column in counts}}
    if tokenized:
        step = tokenized[-1]
        manifest = step.json(TOKENIZED_FILE) or {}
        groups: dict[str, dict[str, dict[str, int]]] = {"category": {}, "language": {}, "code_language": {}}
        for prefix in manifest.get("prefixes", []):
            keys = prefix["keys"]
            category = keys.get("category", UNDETERMINED)
            language = keys.get("language", UNDETERMINED)
            targets = [("category", category), ("code_language" if category == CODE else "language", language)]
            for group, value in targets:
                tally = groups[group].setdefault(value, {"tokens": 0, "bytes": 0, "documents": 0})
                tally["tokens"] += prefix["tokens"]
                tally["bytes"] += prefix["text_bytes"]
                tally["documents"] += prefix["documents"]
        for group in groups:
            groups[group] = dict(sorted(groups[group].items(), key=lambda item: -item[1]["tokens"]))
        section["tokens"] = {"step": step.name, "vocab_size": manifest.get("tokenizer", {}).get("vocab_size"), **groups}
    return section


# --- quality ---------------------------------------------------------------------------------------


def _histogram(values: np.ndarray, low: float, high: float, bins: int | None = None) -> tuple[list[float], list[int]]:
    """Counts over [low, high] in up to MAX_BINS bins (fewer for few values: about two per square root)."""
    if high <= low:
        high = low + 1e-6
    bins = bins or max(8, min(MAX_BINS, int(2 * math.sqrt(len(values)))))
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    return [float(e) for e in edges], [int(c) for c in counts]


def _score_group(lang: str, category: str | None) -> str:
    """A histogram's documents: the prose of a language, or the code a language's model scored (``en code``)."""
    return f"{lang} code" if category == CODE else lang


def language_models(steps: list[StepFiles]) -> list[dict[str, Any]]:
    """What each `lm train` step learned from (its reference dataset) and the percentiles it measured."""
    models = []
    for step in steps:
        card = step.json(CARD_FILE)
        if not card or card.get("stage") != "lm_train":
            continue
        percentiles = card["ppl_percentiles"]  # 0..100 of the held-out (or training) documents
        models.append({
            "step": step.name,
            "lang": card["language"],
            "order": card["order"],
            "pieces": card["pieces"],
            "reference": card["corpus"]["inputs"],
            "documents": card["corpus"]["documents"],
            "bytes": card["corpus"]["bytes"],
            "held_out_documents": card["held_out"]["documents"],
            "percentiles_of": card["held_out"]["percentiles_of"],
            "p30": percentiles[30],
            "p60": percentiles[60],
            "lm_bytes": card["lm_bytes"],
        })  # fmt: skip
    return models


def quality_section(chain: list[StepFiles], steps: list[StepFiles]) -> dict[str, Any] | None:
    """Perplexity histograms with the applied cut-offs, per language (its code apart: the same model and
    cut-offs, but a different distribution), the quality-bucket mix overall and per category, and the
    language models behind them."""
    scored = [step for step in chain if PPL in step.columns()]
    if not scored:
        return None
    step = scored[0]
    present = set(step.columns())
    wanted = [c for c in (LANG, CATEGORY, PPL, PPL_BUCKET, QUALITY_BUCKET, QUALITY_REASONS) if c in present]
    table = Dataset.open(step.out).read_table(columns=wanted)
    rows = table.to_pydict()
    langs = [lang or UNDETERMINED for lang in rows.get(LANG, [UNDETERMINED] * table.num_rows)]
    categories = rows.get(CATEGORY, [None] * table.num_rows)
    ppl = rows[PPL]
    by_group: dict[str, list[int]] = defaultdict(list)
    unscored: Counter[str] = Counter()
    for index, (lang, category, value) in enumerate(zip(langs, categories, ppl)):
        if value is None or not math.isfinite(value) or value <= 0:
            unscored[lang] += 1
        else:
            by_group[_score_group(lang, category)].append(index)
    languages = []
    applied = step.json(CUTOFFS_FILE) or {}
    prose_first = sorted(by_group, key=lambda name: (name != langs[by_group[name][0]], -len(by_group[name])))
    for group in prose_first[:TOP_LANGUAGES]:
        indices = by_group[group]
        lang = langs[indices[0]]
        values = np.array([ppl[i] for i in indices], dtype=np.float64)
        logs = np.log10(values)
        cutoffs = {key: float(applied[lang][key]) for key in CUTOFF_KEYS if lang in applied and applied[lang].get(key)}
        low, high = float(logs.min()), float(logs.max())
        for value in cutoffs.values():  # the axis shows the cut-offs even where no document lies
            low, high = min(low, math.log10(value)), max(high, math.log10(value))
        edges, counts = _histogram(logs, low, high)
        entry: dict[str, Any] = {"group": group, "lang": lang, "code": group != lang, "documents": len(indices),
                                 "log10_edges": edges, "counts": counts, "median_ppl": float(np.median(values)),
                                 "cutoffs": cutoffs, "cutoffs_from": applied.get(lang, {}).get("source"),
                                 "bucket_counts": {}}  # fmt: skip
        if PPL_BUCKET in rows:
            buckets = np.array([rows[PPL_BUCKET][i] or "" for i in indices], dtype=object)
            for bucket in PPL_BUCKETS:
                entry["bucket_counts"][bucket] = _histogram(logs[buckets == bucket], low, high, len(counts))[1]
        if QUALITY_BUCKET in rows:
            entry["quality_buckets"] = dict(Counter(rows[QUALITY_BUCKET][i] for i in indices if rows[QUALITY_BUCKET][i]))
        languages.append(entry)
    by_category: dict[str, Counter[str]] = defaultdict(Counter)
    for category, bucket in zip(categories, rows.get(QUALITY_BUCKET, [])):
        if bucket is not None:
            by_category[category or UNDETERMINED][bucket] += 1
    section: dict[str, Any] = {
        "step": step.name,
        "documents": table.num_rows,
        "scored": sum(len(v) for v in by_group.values()),
        "unscored": dict(unscored.most_common()),
        "languages": languages,
        "quality_buckets": dict(Counter(b for b in rows.get(QUALITY_BUCKET, []) if b is not None)),
        "quality_buckets_by_category": {category: dict(tally) for category, tally in sorted(by_category.items())},
        "reasons": {},
        "models": language_models(steps),
    }
    if QUALITY_REASONS in rows:
        reasons: Counter[str] = Counter()
        for listed in rows[QUALITY_REASONS]:
            reasons.update(listed or [])
        section["reasons"] = dict(reasons.most_common())
    return section


# --- duplicates ------------------------------------------------------------------------------------


def _size_distribution(group_sizes: Counter[int]) -> dict[str, int]:
    """Cluster size -> how many clusters have it, sizes ascending (JSON keys are strings)."""
    return {str(size): count for size, count in sorted(group_sizes.items())}


def duplicates_section(steps: list[StepFiles]) -> dict[str, Any] | None:
    fuzzy, exact = [], []
    for step in steps:
        if path := step.file(CLUSTERS_FILE):
            members = pq.read_table(path, columns=["cluster_id"])["cluster_id"]
            sizes = Counter(int(e["counts"]) for e in pc.value_counts(members).to_pylist())
            stats = step.json(STATS_FILE) or {}
            fuzzy.append({
                "step": step.name,
                "clusters": sum(sizes.values()),
                "documents_in_clusters": sum(size * count for size, count in sizes.items()),
                "removed": sum(t["docs"] for t in stats.get("removed", {}).values()),
                "sizes": _size_distribution(sizes),
                "counters": stats.get("counters", {}),
                "config": (step.json(MANIFEST_FILE) or {}).get("config", {}),
            })  # fmt: skip
        if path := step.file(DUPLICATES_FILE):
            kept = pq.read_table(path, columns=["kept_id"])["kept_id"]
            sizes = Counter(int(e["counts"]) + 1 for e in pc.value_counts(kept).to_pylist())
            exact.append({
                "step": step.name,
                "groups": sum(sizes.values()),
                "removed": len(kept),
                "sizes": _size_distribution(sizes),
            })  # fmt: skip
    return {"fuzzy": fuzzy, "exact": exact} if fuzzy or exact else None


# --- tokenizer -------------------------------------------------------------------------------------


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def prose_categories(directory: Path) -> dict[str, str]:
    """The category classify gave each prose language in a labelled dataset (the most frequent one)."""
    pairs, _ = label_pairs(directory)
    best: dict[str, tuple[int, str]] = {}
    for (category, lang), documents in pairs.items():
        if category != CODE and documents > best.get(lang, (0, ""))[0]:
            best[lang] = (documents, category)
    return {lang: category for lang, (_, category) in best.items()}


def category_fertility(model: dict[str, Any], categories: dict[str, str]) -> dict[str, dict[str, float]]:
    """Bytes per token and tokens per word per category, from the per-language sums of an evaluation;
    ``categories`` maps each prose language to its category."""
    sums: dict[str, dict[str, float]] = {}
    groups = [(categories.get(lang, MULTILINGUAL), m) for lang, m in model["languages"].items()]
    groups += [(CODE, m) for m in model["code_languages"].values()]
    for category, metrics in groups:
        total = sums.setdefault(category, {"docs": 0, "bytes": 0, "words": 0, "tokens": 0, "byte_fallback_tokens": 0})
        for key in total:
            total[key] += metrics[key]
    return {
        category: {
            **total,
            "bytes_per_token": _ratio(total["bytes"], total["tokens"]),
            "tokens_per_word": _ratio(total["tokens"], total["words"]),
            "byte_fallback_rate": _ratio(total["byte_fallback_tokens"], total["tokens"]),
        }
        for category, total in sums.items()
    }


def tokenizer_section(steps: list[StepFiles]) -> dict[str, Any] | None:
    cards = [(step, card) for step in steps if (card := step.json(CARD_FILE)) and card.get("stage") == "tokenizer_train"]
    evals = [(step, report) for step in steps if (report := step.json(EVAL_FILE)) and report.get("stage") == "tokenizer_eval"]
    if not cards and not evals:
        return None
    section: dict[str, Any] = {"cards": [], "evaluations": []}
    for step, card in cards:
        section["cards"].append({
            "step": step.name,
            "vocab_size": card["settings"]["vocab_size"],
            "model_type": card.get("sentencepiece_options", {}).get("model_type"),
            "sample_documents": card["sample"].get("documents"),
            "sample_bytes": card["sample"].get("bytes"),
            "by_category": card["sample"].get("composition", {}).get("by_category", {}),
            "wall_seconds": card.get("wall_seconds"),
            "peak_rss_bytes": card.get("peak_rss_bytes"),
            "sentences_loaded": card.get("sentences_loaded"),
        })  # fmt: skip
    for step, report in evals:
        dataset = Path(report["input"])
        categories = prose_categories(dataset) if (dataset / MANIFEST_FILE).exists() else {"en": ENGLISH}
        models = {}
        for label, model in report["models"].items():
            models[label] = {
                "vocab_size": model["vocab_size"],
                "vocab_used_share": model["vocab_used_share"],
                "total": model["total"],
                "languages": model["languages"],
                "code_languages": model["code_languages"],
                "categories": category_fertility(model, categories),
            }
        section["evaluations"].append({"step": step.name, "categories_of_languages": categories, "models": models})
    return section


# --- blend -----------------------------------------------------------------------------------------


def blend_section(steps: list[StepFiles]) -> list[dict[str, Any]] | None:
    blends = []
    for step in steps:
        blend = step.json(TRAINER_FILE)
        if blend is None:
            continue
        components = [
            {
                "prefix": Path(entry["prefix"]).name,
                "group": entry["group"],
                "tokens": entry["tokens"],
                "documents": entry["documents"],
                "share": entry["weight"],
                "tokens_drawn": entry["tokens_drawn"],
                "epochs": entry["epochs"],
            }
            for entry in blend["splits"]["train"]
        ]
        groups: dict[str, dict[str, float]] = {}
        for component in components:
            group = groups.setdefault(component["group"], {"share": 0.0, "tokens": 0, "tokens_drawn": 0.0})
            group["share"] += component["share"]
            group["tokens"] += component["tokens"]
            group["tokens_drawn"] += component["tokens_drawn"]
        blends.append({
            "step": step.name,
            "spec": blend["spec"],
            "phase": blend["phase"],
            "planned_tokens": blend["planned_tokens"],
            "components": sorted(components, key=lambda c: -c["share"]),
            "groups": groups,
            "held_out": {split: len(blend["splits"].get(split, [])) for split in ("valid", "test")},
            "not_drawn": [{**entry, "prefix": Path(entry["prefix"]).name} for entry in blend.get("not_drawn", [])],
            "warnings": blend.get("warnings"),  # None: written before blend resolve recorded its warnings
        })  # fmt: skip
    return blends or None


# --- training --------------------------------------------------------------------------------------


def training_section(steps: list[StepFiles]) -> list[dict[str, Any]] | None:
    runs = []
    for step in steps:
        path = step.file(METRICS_FILE)
        if path is None:
            continue
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        records = [line for line in lines if "step" in line and "loss" in line]
        if not records:
            continue
        # The trainer numbers its phases; run.json names them (the blend phases: pretrain, continued).
        names = {phase["index"]: phase["name"] for phase in (step.json(TRAIN_RUN_FILE) or {}).get("phases", [])}
        phases: dict[str, list[list[float]]] = {}
        for record in records:
            phase = record.get("phase", "train")
            name = names.get(phase, f"phase {phase}") if isinstance(phase, int) else str(phase)
            phases.setdefault(name, []).append([record["step"], record["loss"]])
        last = records[-1]
        runs.append({
            "step": step.name,
            "steps": len(records),
            "first_loss": records[0]["loss"],
            "last_loss": last["loss"],
            "tokens": last.get("tokens"),
            "tokens_per_s": last.get("tokens_per_s"),
            "mfu": last.get("mfu"),
            "phases": phases,
        })  # fmt: skip
    return runs or None


# --- the whole report ------------------------------------------------------------------------------


def collect_report(run_dir: str | Path) -> dict[str, Any]:
    """Every number the report shows, from the run record and the files its steps wrote."""
    record = read_run_record(run_dir)
    steps = [StepFiles(entry) for entry in record["steps"]]
    chain = document_chain(steps)
    chained = {step.name for step in chain}
    return {
        "run": {key: record.get(key) for key in ("name", "profile", "pipeline", "out", "status", "started_at",
                                                   "finished_at", "elapsed_s")},  # fmt: skip
        "steps": [
            {key: entry.get(key) for key in ("number", "name", "stage", "status", "elapsed_s", "units_run", "out")}
            for entry in record["steps"]
        ],
        "funnel": [funnel_entry(step) for step in chain],
        "side_steps": [funnel_entry(step) for step in steps if step.file(STATS_FILE) and step.name not in chained],
        "mix": label_section(chain, steps),
        "quality": quality_section(chain, steps),
        "duplicates": duplicates_section(steps),
        "tokenizer": tokenizer_section(steps),
        "blends": blend_section(steps),
        "training": training_section(steps),
    }


def write_report(run_dir: str | Path, out: str | Path) -> Path:
    """Collect and render the report of ``run_dir`` into one self-contained HTML file."""
    from corpusmill.pipelines.report_html import render_html

    html = render_html(collect_report(run_dir))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return out


@dataclass(frozen=True, kw_only=True)
class ReportOptions:
    """`corpusmill report RUN_DIR [--out report.html]`."""

    run_dir: str = option(positional=True, help="the --out of `corpusmill run` (or `corpusmill demo`)")
    out: str | None = option(None, help="the HTML file to write (default: RUN_DIR/report.html)")


def report(options: ReportOptions, *, executor: Executor, overwrite: bool = False) -> Path:
    return write_report(options.run_dir, options.out or Path(options.run_dir) / "report.html")


COMMANDS = [
    StageCommand(
        ("report",), "one self-contained HTML page of what a pipeline run did (open it in a browser)",
        ReportOptions, report, lambda path: f"wrote {path}", kind=TOOL,
    )
]  # fmt: skip
