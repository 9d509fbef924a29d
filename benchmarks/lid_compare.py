"""Language identifiers compared on one evaluation set: macro-F1, per-language F1, `und`, speed.

    .venv/bin/python benchmarks/lid_eval_set.py --out bench_data/lid_eval     # build the set first
    .venv/bin/python benchmarks/lid_compare.py --set bench_data/lid_eval [--write-thresholds]

Every identifier reads the same prepared text of every document (`langid.prepare_texts`, first
``--max-chars`` characters on one line). Rows:

* **top-1**: the identifier's first answer, never `und` (except where it has none);
* **classify, 5-fold cross-validated**: what `corpusmill classify --lid NAME` writes (the
  not-language gate, paragraphs of multi-paragraph documents, the fusion's routes, per-language
  thresholds, and for the fusion its group refiner), with the refiner (`lid_refiner_train`),
  routes (`thresholds.fit_routes`) and thresholds (`thresholds.fit_thresholds`) fitted on four
  folds and each document labelled by the fit that did not see it; the fit on every fold is what
  ``--write-thresholds`` ships. Folds are by source, ``xxh64(source) % 5``: a catalog's file name
  (``coreutils.mo``, the same in every locale), a manual page's name (``passwd.5``), so no fold
  is labelled by a refiner trained on any translation of the catalog or page it reads;
* **lingua** runs on a sample (``--lingua-per-language`` documents per language, first 1,000
  characters), and the others are scored on that sample too.

Scores: macro-F1 over the languages that at least one compared identifier can name
(``scored``; the others are listed, their documents stay in as false positives of whatever they
are called), over those with >= 30 documents, and over the man-page and catalog subsets; `und`
rate on language documents; the share of mostly non-linguistic documents labelled `und`.
Speed: documents per CPU-second of this process (one thread, so per core). The machine is
shared with other jobs; CPU time is less noisy than wall time but still moves with cache
pressure.

``--fit-fusion`` searches the ``lid176+heliport`` constants (top-1 on the whole set);
``--write-thresholds`` writes ``curation/classify/models/lid_thresholds.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from corpusmill.curation.classify import identifiers as ids
from corpusmill.curation.classify.labels import UNDETERMINED
from corpusmill.curation.classify.langid import (
    DEFAULT_LID_MAX_CHARS,
    MIN_LETTER_SHARE,
    LanguageIdentifier,
    bundled_lid_model_path,
    letter_shares,
    paragraphs,
    prepare_texts,
)
from corpusmill.curation.classify.lid_refiner import GroupRefiner, packaged_refiner_path
from corpusmill.curation.classify.lid_refiner_train import (
    REFINER_GROUPS,
    Chunk,
    RefinerSettings,
    catalog_chunks,
    train_refiner,
)
from corpusmill.curation.classify.thresholds import (
    Thresholds,
    fit_routes,
    fit_thresholds,
    macro_f1,
    thresholds_path,
    write_thresholds,
)

MIN_DOCS = 30
FOLDS = 5
SHIPPED = ("lid176", "heliport", "cld3", "lid176+heliport")
METHOD = (
    "benchmarks/lid_compare.py --write-thresholds: thresholds.fit_routes, then thresholds.fit_thresholds "
    "(grid 0.00..0.90 step 0.05), on the units classify reads (documents, or paragraphs of multi-paragraph "
    "ones) of every document of benchmarks/lid_eval_set.py's set; scores reported 5-fold cross-validated"
)


class EvaluationSet:
    def __init__(self, directory: Path, max_chars: int) -> None:
        table = pq.read_table(directory / "documents.parquet")
        self.manifest = json.loads((directory / "manifest.json").read_text())
        self.ids = table["id"].to_pylist()
        self.gold = table["lang"].to_pylist()
        self.kinds = table["kind"].to_pylist()
        self.texts = table["text"].to_pylist()
        self.prepared = prepare_texts(table["text"], max_chars)
        self.readable = letter_shares(self.prepared) >= MIN_LETTER_SHARE
        self.fold = np.array(
            [fold_of(source(origin, kind)) for origin, kind in zip(table["origin"].to_pylist(), self.kinds)]
        )
        self.owner, units = [], []
        for row, text in enumerate(self.texts):
            blocks = paragraphs(text)
            for block in blocks if len(blocks) >= 2 else [text]:
                self.owner.append(row)
                units.append(block)
        unit_texts = prepare_texts(pa.array(units, pa.large_string()), max_chars)
        unit_readable = letter_shares(unit_texts) >= MIN_LETTER_SHARE
        self.units = [text if ok else "" for text, ok in zip(unit_texts, unit_readable)]
        """What classify reads, gated: each document whole, or each paragraph of a multi-paragraph one."""
        self.unit_gold = [self.gold[row] for row in self.owner]
        self.unit_fold = self.fold[self.owner]

    def __len__(self) -> int:
        return len(self.ids)


def source(origin: str, kind: str) -> str:
    """What a document was made from, the same in every language: a catalog's or a manual page's file name."""
    name = origin.rsplit("/", 1)[-1]
    return {"catalog": name, "man": "man:" + name.removesuffix(".gz")}.get(kind, origin)


def fold_of(source_name: str) -> int:
    return xxhash.xxh64_intdigest(source_name) % FOLDS


class Refiners:
    """The group refiner trained on every catalog but one fold's (and on all of them), cached in ``work``."""

    def __init__(self, locale_root: Path, work: Path, threads: int) -> None:
        self.chunks: list[Chunk] = catalog_chunks(locale_root, {code for group in REFINER_GROUPS for code in group})
        self.work, self.threads = work, threads
        work.mkdir(parents=True, exist_ok=True)

    def trained(self, fold: int | None) -> GroupRefiner:
        """The refiner that has seen no catalog of ``fold`` (None: all catalogs, the shipped fit)."""
        path = self.work / f"refiner_{'all' if fold is None else fold}.ftz"
        if not path.is_file():
            excluded = {chunk.domain for chunk in self.chunks if fold is not None and fold_of(chunk.domain) == fold}
            threads = 1 if fold is None else self.threads  # the shipped fit: one thread, reproducible
            train_refiner(self.chunks, path, RefinerSettings(threads=threads), excluded)
        return GroupRefiner(path)


def top(rankings: Sequence[ids.Ranking]) -> tuple[list[str], np.ndarray]:
    codes = [ranking[0][0] if ranking else UNDETERMINED for ranking in rankings]
    return codes, np.array([ranking[0][1] if ranking else 0.0 for ranking in rankings])


def timed(rank: Callable[[list[str]], list[ids.Ranking]], texts: list[str]) -> tuple[list[ids.Ranking], float]:
    """Rankings and CPU seconds (this process: every identifier runs one thread)."""
    rank(texts[:50])  # warm up
    start = time.process_time()
    rankings = rank(texts)
    return rankings, time.process_time() - start


class Scorer:
    """Macro-F1 over a fixed language list, for any subset of the documents."""

    def __init__(self, data: EvaluationSet, supported: set[str]) -> None:
        self.data = data
        counts = Counter(g for g in data.gold if g != UNDETERMINED)
        self.scored = sorted(language for language in counts if language in supported)
        self.unsupported = sorted(language for language in counts if language not in supported)
        self.big = [language for language in self.scored if counts[language] >= MIN_DOCS]

    def report(self, predicted: Sequence[str], rows: np.ndarray | None = None) -> dict:
        rows = np.ones(len(self.data), bool) if rows is None else rows
        gold = [g for g, keep in zip(self.data.gold, rows) if keep]
        kinds = [k for k, keep in zip(self.data.kinds, rows) if keep]
        labels = [p for p, keep in zip(predicted, rows) if keep]
        _, per_language = macro_f1(gold, labels)

        def mean(languages: Sequence[str], kind: str | None = None) -> float:
            if kind is None:
                values = [per_language[language] for language in languages if language in per_language]
            else:
                subset = [(g, p) for g, p, k in zip(gold, labels, kinds) if k == kind or (k == "nonling")]
                _, by_kind = macro_f1([g for g, _ in subset], [p for _, p in subset])
                values = [by_kind[language] for language in languages if language in by_kind]
            return float(np.mean(values)) if values else 0.0

        language_docs = [p for g, p in zip(gold, labels) if g != UNDETERMINED]
        nonling = [p for g, p in zip(gold, labels) if g == UNDETERMINED]
        return {
            "macro_f1_scored": mean(self.scored),
            "macro_f1_30": mean(self.big),
            "macro_f1_man": mean(self.scored, "man"),
            "macro_f1_catalog": mean(self.scored, "catalog"),
            "und_rate": language_docs.count(UNDETERMINED) / max(1, len(language_docs)),
            "nonling_und": nonling.count(UNDETERMINED) / max(1, len(nonling)),
            "f1": {language: per_language.get(language, 0.0) for language in self.scored},
        }


def fit(
    data: EvaluationSet,
    name: str,
    units: dict[str, list[ids.Ranking]],
    rows: np.ndarray,
    refiner: GroupRefiner | None = None,
):
    """Routes (the fusion only) and thresholds for ``name`` from the units of the documents in ``rows``."""
    keep = rows[data.owner]
    gold = [g for g, k in zip(data.unit_gold, keep) if k]
    codes, scores = top(refiner.refine(units[name], data.units) if refiner else units[name])
    routes: list[ids.Route] = []
    if name == "lid176+heliport":
        asked = [
            bool(text) and (not r or r[0][1] < ids.CASCADE_CONFIDENCE) for text, r in zip(data.units, units["lid176"])
        ]
        others = {
            other: [c if a else UNDETERMINED for c, a in zip(top(units[other])[0], asked)]
            for other in ("heliport", "cld3")
        }
        routes = fit_routes(
            gold,
            [c for c, k in zip(codes, keep) if k],
            {n: [c for c, k in zip(v, keep) if k] for n, v in others.items()},
        )
        routed = others | {"fused": codes}
        current = np.asarray(codes, dtype=object)
        for route in routes:
            other = np.asarray(routed[route.identifier], dtype=object)
            current = np.where((current == route.fused) & (other == route.answer), route.answer, current)
        codes = current.tolist()
    thresholds = fit_thresholds(gold, [c for c, k in zip(codes, keep) if k], scores[keep].tolist())
    return routes, thresholds


def cross_validated(
    data: EvaluationSet,
    name: str,
    units: dict,
    pipeline: LanguageIdentifier,
    refiners: Refiners | None,
    abstain: bool = True,
) -> tuple[list[str], float]:
    """Each document labelled by classify with the refiner, routes and thresholds fitted on the other folds; CPU-s."""
    labels = [UNDETERMINED] * len(data)
    seconds = 0.0
    fusion = pipeline.identifier
    for fold in range(FOLDS):
        refiner = refiners.trained(fold) if refiners and isinstance(fusion, ids.Lid176Heliport) else None
        routes, pipeline.thresholds = fit(data, name, units, data.fold != fold, refiner)
        if not abstain:  # the same classify, never `und` but for the not-language gate: what `und` costs
            pipeline.thresholds = Thresholds(0.0)
        if isinstance(fusion, ids.Lid176Heliport):
            pipeline.identifier = fusion.with_fit(routes, refiner)
        rows = np.flatnonzero(data.fold == fold)
        start = time.process_time()
        predicted = pipeline.predict(pa.array([data.texts[row] for row in rows], pa.large_string())).langs
        seconds += time.process_time() - start
        for row, label in zip(rows, predicted):
            labels[row] = label
    pipeline.identifier = fusion
    return labels, seconds


def fusion_search(
    data: EvaluationSet, lid176: list[ids.Ranking], lid176_languages: frozenset[str], helio_raw: list, scorer: Scorer
) -> list[dict]:
    """Top-1 macro-F1 for a grid of fusion constants (to choose them; the routes and thresholds are cross-validated)."""
    results = []
    for sharpness in (1.0, 2.0, 4.0, 8.0):
        helio = [ids.heliport_probabilities(raw, sharpness) for raw in helio_raw]
        for weight in (0.3, 0.4, 0.5, 0.6, 0.7):
            for cascade in (0.5, 0.7, 0.8, 0.9, 0.95, 1.01):
                fused = [
                    ids.fuse(lr, hr, weight, text, lid176_languages) if text and (not lr or lr[0][1] < cascade) else lr
                    for lr, hr, text in zip(lid176, helio, data.prepared)
                ]
                codes, _ = top(fused)
                row = scorer.report(codes)
                asked = sum(1 for lr, t in zip(lid176, data.prepared) if t and (not lr or lr[0][1] < cascade))
                results.append(
                    {
                        "sharpness": sharpness,
                        "weight": weight,
                        "cascade": cascade,
                        "asked": asked / len(data),
                        "macro_f1_scored": row["macro_f1_scored"],
                        "macro_f1_man": row["macro_f1_man"],
                    }
                )
    return sorted(results, key=lambda r: -r["macro_f1_scored"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", type=Path, default=Path("bench_data/lid_eval"))
    parser.add_argument("--max-chars", type=int, default=DEFAULT_LID_MAX_CHARS)
    parser.add_argument("--lingua-per-language", type=int, default=10)
    parser.add_argument("--fit-fusion", action="store_true")
    parser.add_argument("--write-thresholds", action="store_true", help="ship the fit: thresholds, routes, refiner")
    parser.add_argument("--locale-root", type=Path, default=Path("/usr/share/locale"), help="the refiner's catalogs")
    parser.add_argument("--work", type=Path, default=Path("bench_data/lid_refiners"), help="the refiners trained")
    parser.add_argument(
        "--train-threads", type=int, default=1, help="fastText threads for the cross-validation folds' refiners"
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--labels", type=Path, default=None, help="write each document's cross-validated labels (parquet)"
    )
    args = parser.parse_args()
    data = EvaluationSet(args.set, args.max_chars)
    model = bundled_lid_model_path()
    lid176, heliport = ids.Lid176(model), ids.Heliport()
    identifiers: dict[str, ids.Identifier] = {
        "lid176": lid176,
        "heliport": heliport,
        "cld3": ids.Cld3(),
        "lid176+heliport": ids.Lid176Heliport(lid176, heliport),
        "lid176+heliport (fused on every document)": ids.Lid176Heliport(lid176, heliport, cascade=1.01),
    }
    rankings, seconds = {}, {}
    for name, identifier in identifiers.items():
        rankings[name], seconds[name] = timed(identifier.rank, data.prepared)
        print(f"{name}: {len(data) / seconds[name]:,.0f} docs per CPU-second", flush=True)
    refiners = Refiners(args.locale_root, args.work, args.train_threads)
    shipped_refiner = refiners.trained(None)
    supported = {code for ranking in rankings.values() for r in ranking for code, _ in r}
    supported |= set(shipped_refiner.group_of)
    scorer = Scorer(data, supported)
    report: dict = {"documents": len(data), "scored": scorer.scored, "unsupported": scorer.unsupported, "rows": {}}
    unit_rankings = {name: identifiers[name].rank(data.units) for name in SHIPPED}
    fitted: dict[str, Thresholds] = {}
    routes: dict[str, list[ids.Route]] = {}
    cv_labels: dict[str, list[str]] = {}
    for name, ranking in rankings.items():
        codes, _ = top(ranking)
        entry = {"docs_per_cpu_second": len(data) / seconds[name], "top1_all": scorer.report(codes)}
        if name in SHIPPED:
            refiner = shipped_refiner if name == "lid176+heliport" else None
            routes[name], fitted[name] = fit(data, name, unit_rankings, np.ones(len(data), bool), refiner)
            pipeline = LanguageIdentifier(name, thresholds=fitted[name], max_chars=args.max_chars)
            pipeline.identifier = identifiers[name]  # models loaded once; cross_validated sets each fold's fit
            labels, cpu_seconds = cross_validated(data, name, unit_rankings, pipeline, refiners)
            entry["pipeline_docs_per_cpu_second"] = len(data) / cpu_seconds
            entry["classify_cv"] = scorer.report(labels)
            entry["classify_cv_no_und"] = scorer.report(
                cross_validated(data, name, unit_rankings, pipeline, refiners, abstain=False)[0]
            )
            cv_labels[name] = labels
        report["rows"][name] = entry
    report["routes"] = {name: [list(route) for route in found] for name, found in routes.items() if found}
    report["previous_release"] = previous_release(data, scorer, lid176)
    report["lingua_sample"] = lingua_sample(data, scorer, rankings, args.lingua_per_language)
    report["agreement"] = agreement(data, scorer, rankings)
    if args.fit_fusion:
        helio_raw = [heliport.raw(text) if text else [] for text in data.prepared]
        report["fusion_search"] = fusion_search(data, rankings["lid176"], lid176.languages, helio_raw, scorer)[:10]
    if args.write_thresholds:
        for suffix in (".ftz", ".json"):
            packaged = packaged_refiner_path().with_suffix(suffix)
            packaged.write_bytes(shipped_refiner.model_path.with_suffix(suffix).read_bytes())
        write_thresholds(
            thresholds_path(),
            {name: fitted[name] for name in SHIPPED},
            {"documents": len(data), "sha256": data.manifest["sha256"], "max_chars": args.max_chars},
            METHOD,
            routes,
        )
    print(to_markdown(report, scorer))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    if args.labels:
        pq.write_table(pa.table({"id": data.ids, "lang": data.gold, "kind": data.kinds} | cv_labels), args.labels)


def lingua_sample(data: EvaluationSet, scorer: Scorer, rankings: dict, per_language: int) -> dict:
    """lingua and every other identifier on the same few documents per language (lingua is slow)."""
    taken: Counter[str] = Counter()
    rows = np.zeros(len(data), bool)
    for row, gold in enumerate(data.gold):
        if taken[gold] < per_language:
            taken[gold] += 1
            rows[row] = True
    lingua = ids.Lingua()
    texts = [text[:1000] for text, keep in zip(data.prepared, rows) if keep]
    lingua_rankings, lingua_seconds = timed(lingua.rank, texts)
    lingua_codes = iter(top(lingua_rankings)[0])
    codes = [next(lingua_codes) if keep else UNDETERMINED for keep in rows]
    result = {"documents": int(rows.sum()), "lingua": scorer.report(codes, rows)}
    result["lingua"]["docs_per_cpu_second"] = len(texts) / lingua_seconds
    lingua_languages = {language.iso_code_639_1.name.lower() for language in __import__("lingua").Language.all()}
    result["lingua_languages_scored"] = sorted(lingua_languages & set(scorer.scored))
    for name, ranking in rankings.items():
        result[name] = scorer.report(top(ranking)[0], rows)
    return result


def previous_release(data: EvaluationSet, scorer: Scorer, lid176: ids.Lid176) -> dict:
    """What classify wrote before: lid.176 top-1 on the first 1,000 characters, `und` below 0.5 for every language."""
    codes, scores = top(lid176.rank(prepare_texts(pa.array(data.texts, pa.large_string()), 1000)))
    return scorer.report(Thresholds(0.5).apply(codes, scores.tolist()))


def agreement(data: EvaluationSet, scorer: Scorer, rankings: dict) -> dict:
    """lid.176 and heliport agreeing, else `und`: precision-first, for comparison."""
    first, second = top(rankings["lid176"])[0], top(rankings["heliport"])[0]
    agreed = [a if a == b else UNDETERMINED for a, b in zip(first, second)]
    return scorer.report(agreed)


def to_markdown(report: dict, scorer: Scorer) -> str:
    lines = [
        f"{report['documents']} documents; {len(scorer.scored)} scored languages "
        f"({len(scorer.big)} with >= {MIN_DOCS} documents); no compared identifier names: "
        f"{', '.join(scorer.unsupported)}",
        "",
        "| identifier | rows | macro-F1 scored | >= 30 docs | man pages | catalogs | und rate "
        "| non-linguistic -> und | docs/s per core |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def row(name: str, what: str, r: dict, speed: str) -> str:
        return (
            f"| {name} | {what} | {r['macro_f1_scored']:.4f} | {r['macro_f1_30']:.4f} | {r['macro_f1_man']:.4f} | "
            f"{r['macro_f1_catalog']:.4f} | {r['und_rate']:.4f} | {r['nonling_und']:.2f} | {speed} |"
        )

    for name, entry in report["rows"].items():
        lines.append(row(name, "top-1, whole text", entry["top1_all"], f"{entry['docs_per_cpu_second']:,.0f}"))
        if "classify_cv" in entry:
            speed = f"{entry['pipeline_docs_per_cpu_second']:,.0f}"
            lines.append(row(name, "classify, 5-fold cross-validated", entry["classify_cv"], speed))
            lines.append(
                row(name, "the same, thresholds 0 (`und` only from the gate)", entry["classify_cv_no_und"], "")
            )
    lines.append(row("lid176 = heliport, else und", "top-1", report["agreement"], ""))
    lines.append(row("previous release (lid176, 1,000 chars, und < 0.5)", "classify", report["previous_release"], ""))
    sample = report["lingua_sample"]
    lines += [
        "",
        f"Sample of {sample['documents']} documents "
        f"(lingua knows {len(sample['lingua_languages_scored'])} of the scored languages):",
        "",
    ]
    lines += ["| identifier | macro-F1 scored | >= 30 docs | man pages | catalogs |", "|---|---|---|---|---|"]
    for name, r in sample.items():
        if isinstance(r, dict):
            scores = (r["macro_f1_scored"], r["macro_f1_30"], r["macro_f1_man"], r["macro_f1_catalog"])
            lines.append(f"| {name} | " + " | ".join(f"{value:.4f}" for value in scores) + " |")
    names = list(report["rows"])
    lines += ["", "| language | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for language in scorer.scored:
        values = [report["rows"][n].get("classify_cv", report["rows"][n]["top1_all"])["f1"][language] for n in names]
        lines.append(f"| {language} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    lines += ["", "Routes fitted on the whole set (shipped): " + json.dumps(report["routes"])]
    if "fusion_search" in report:
        lines += ["", "Fusion search (whole set, top-1):", ""]
        lines += [json.dumps(r) for r in report["fusion_search"]]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
