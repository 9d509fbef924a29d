"""Per-language minimum scores for ``lang``: the shipped file, how it is read, and how it is fitted.

A prediction whose probability is below its language's threshold becomes ``und``. One global
threshold (the old 0.5) turns many right answers into ``und`` in languages a model is modest
about (Croatian, Galician, Nynorsk) while letting through wrong answers in languages it is
eager to say (English for any Latin-script text it does not know). So each language gets its own.

File: ``models/lid_thresholds.json`` (package data, owned by this module)::

    {"format": "corpusmill-lid-thresholds", "version": 1, "method": "...",
     "evaluation_set": {"documents": N, "sha256": "..."},
     "identifiers": {"lid176": {"default": 0.3, "languages": {"en": 0.55, ...}}, ...}}

Fitting (`fit_thresholds`, run by ``benchmarks/lid_compare.py --write-thresholds``): on the
calibration half of the evaluation set, with the candidate grid ``THRESHOLD_GRID``,

1. ``default``: the one grid value that, applied to every language, gives the best macro-F1;
2. then, language by language (sorted codes, two sweeps), the grid value for that language that
   gives the best macro-F1 with every other threshold held, for each language of the set predicted
   at least ``MIN_FIT_PREDICTIONS`` times. Rarer ones keep ``default``, and so do codes the set has
   no documents of (Extremaduran said for Asturian): no answer of theirs can be right here, so
   macro-F1 cannot choose their threshold, and the lowest would let them label any garbage.

Macro-F1 is taken over the gold languages; documents whose gold label is ``und`` (mostly
non-linguistic text) count only as false positives of whatever they are labelled. Ties keep the
lower threshold, so the fit abstains no more than it must; it is deterministic.

Routes (`fit_routes`, for ``lid176+heliport``; see `identifiers.Route`), fitted before the
thresholds on the same texts: every pair (fused answer A, heliport's or CLD3's answer B) where B
is right and A wrong at least ``MIN_ROUTE_CASES`` times is a candidate; candidates are tried
most frequent first (ties by name), and each is kept when it raises macro-F1 by more than
``MIN_ROUTE_GAIN`` given the routes kept before it.

Both fits take units as ``lid_compare.py`` builds them: the texts classify reads (a document
whole, or each paragraph of a multi-paragraph one), each labelled with its document's gold label.
The shipped file is fitted on the whole set; the scores reported for it are cross-validated
(5 folds by source, ``xxh64(catalog or page name) % 5``: fitted on four, scored on the fifth), see
``docs/BENCHMARKS.md``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from corpusmill.curation.classify.identifiers import Route
from corpusmill.curation.classify.labels import UNDETERMINED
from corpusmill.curation.errors import MissingFileError

FORMAT = "corpusmill-lid-thresholds"
VERSION = 1
THRESHOLD_GRID = tuple(round(0.05 * step, 2) for step in range(19))  # 0.0 .. 0.9
MIN_FIT_PREDICTIONS = 10
SWEEPS = 2
MIN_ROUTE_CASES = 3
MIN_ROUTE_GAIN = 1e-4


def thresholds_path() -> Path:
    return Path(__file__).parent / "models" / "lid_thresholds.json"


@dataclass(frozen=True)
class Thresholds:
    """Minimum probability per language, and the one for every language not listed."""

    default: float
    languages: Mapping[str, float] = field(default_factory=dict)

    def minimum(self, code: str) -> float:
        return self.languages.get(code, self.default)

    def apply(self, codes: Sequence[str], scores: Sequence[float]) -> list[str]:
        """``und`` where a code's score is below its threshold (or is zero: nothing was read)."""
        return [
            code if score > 0.0 and score >= self.minimum(code) else UNDETERMINED for code, score in zip(codes, scores)
        ]


@cache
def shipped_thresholds(identifier: str) -> Thresholds | None:
    """The thresholds fitted for ``identifier``, or None when the file has none for it."""
    path = thresholds_path()
    if not path.is_file():
        raise MissingFileError(f"{path} is missing: reinstall corpusmill (it is package data)")
    entry = json.loads(path.read_text())["identifiers"].get(identifier)
    return Thresholds(entry["default"], entry["languages"]) if entry else None


def shipped_routes(identifier: str) -> tuple[Route, ...]:
    """The routes fitted for ``identifier`` (only the fusion has any)."""
    entry = json.loads(thresholds_path().read_text())["identifiers"].get(identifier) or {}
    return tuple(Route(*route) for route in entry.get("routes", []))


def write_thresholds(
    path: Path,
    fitted: Mapping[str, Thresholds],
    evaluation_set: Mapping,
    method: str,
    routes: Mapping[str, Sequence[Route]] | None = None,
) -> None:
    routes = routes or {}
    record = {
        "format": FORMAT,
        "version": VERSION,
        "method": method,
        "evaluation_set": dict(evaluation_set),
        "identifiers": {
            name: {
                "default": t.default,
                "languages": dict(sorted(t.languages.items())),
                **({"routes": [list(route) for route in routes[name]]} if routes.get(name) else {}),
            }
            for name, t in fitted.items()
        },
    }
    path.write_text(json.dumps(record, indent=1, sort_keys=False) + "\n")


def macro_f1(gold: Sequence[str], predicted: Sequence[str]) -> tuple[float, dict[str, float]]:
    """Macro-F1 over the gold languages (``und`` in gold is not a language: it only adds false positives)."""
    languages = sorted(set(gold) - {UNDETERMINED})
    gold_array, predicted_array = np.asarray(gold), np.asarray(predicted)
    per_language = {}
    for language in languages:
        is_gold, is_predicted = gold_array == language, predicted_array == language
        true_positives = int(np.sum(is_gold & is_predicted))
        denominator = int(is_gold.sum() + is_predicted.sum())
        per_language[language] = 2 * true_positives / denominator if true_positives else 0.0
    return (sum(per_language.values()) / len(per_language) if per_language else 0.0), per_language


class _Counts:
    """Labels as integers (gold languages first, ``-1`` for ``und``) so that a macro-F1 is two bincounts."""

    def __init__(self, gold: Sequence[str], codes: Sequence[str], scores: Sequence[float]) -> None:
        languages = sorted(set(gold) - {UNDETERMINED})
        others = sorted(set(codes) - set(languages) - {UNDETERMINED})
        self.names = languages + others
        self.index = index = {name: i for i, name in enumerate(self.names)}
        self.gold = np.array([index.get(g, -1) for g in gold], dtype=np.int64)
        self.codes = np.array([index.get(c, -1) for c in codes], dtype=np.int64)
        self.scores = np.asarray(scores, dtype=np.float64)
        self.languages = len(languages)
        self.gold_count = np.bincount(self.gold[self.gold >= 0], minlength=len(self.names))[: self.languages]

    def macro_f1(self, labels: np.ndarray) -> float:
        size = len(self.names)
        predicted = np.bincount(labels[labels >= 0], minlength=size)[: self.languages]
        hits = labels[(labels == self.gold) & (labels >= 0)]
        true_positive = np.bincount(hits, minlength=size)[: self.languages]
        f1 = 2 * true_positive / np.maximum(self.gold_count + predicted, 1)
        return float(f1.mean())

    def labels(self, minimum: Mapping[str, float], default: float) -> np.ndarray:
        limits = np.full(len(self.names), default)
        for name, threshold in minimum.items():
            limits[self.names.index(name)] = threshold
        keep = (self.codes >= 0) & (self.scores > 0) & (self.scores >= limits[np.maximum(self.codes, 0)])
        return np.where(keep, self.codes, -1)


def fit_thresholds(gold: Sequence[str], codes: Sequence[str], scores: Sequence[float]) -> Thresholds:
    """Thresholds for one identifier from its top codes and scores on labelled documents (see module doc)."""
    counts = _Counts(gold, codes, scores)
    default = max(THRESHOLD_GRID, key=lambda t: (counts.macro_f1(counts.labels({}, t)), -t))
    languages = set(gold) - {UNDETERMINED}
    predicted = {code: sum(1 for c in codes if c == code) for code in set(codes) & languages}
    fitted: dict[str, float] = {}
    for _ in range(SWEEPS):
        for code in sorted(c for c, n in predicted.items() if n >= MIN_FIT_PREDICTIONS):

            def quality(threshold: float, code: str = code) -> tuple[float, float]:
                return counts.macro_f1(counts.labels({**fitted, code: threshold}, default)), -threshold

            fitted[code] = max(THRESHOLD_GRID, key=quality)
    return Thresholds(default, {code: t for code, t in fitted.items() if t != default})


NEVER_ROUTED_TO_CLD3 = frozenset({"en"})
"""Answers too common to send to CLD3: a route on them makes CLD3 read every unsure English paragraph.

The two English routes a fit found (en→vi, en→ko) cost classify most of its speed goal (0.41x the
previous release's documents/s with them; docs/BENCHMARKS.md, "Speed") for a few documents of
Vietnamese and Korean catalogs whose messages are mostly English terms.
"""


def fit_routes(gold: Sequence[str], fused: Sequence[str], others: Mapping[str, Sequence[str]]) -> list[Route]:
    """Routes for the fusion from its top codes and the other identifiers' (name -> codes) on labelled units."""
    current = np.asarray(fused, dtype=object)
    answers = {name: np.asarray(codes, dtype=object) for name, codes in others.items()}
    gold_array = np.asarray(gold, dtype=object)
    cases: dict[Route, int] = {}
    for name, answer in answers.items():
        right = (answer == gold_array) & (current != gold_array) & (answer != UNDETERMINED)
        for fused_code, answer_code in zip(current[right], answer[right]):
            route = Route(name, fused_code, answer_code)
            if not (name == "cld3" and fused_code in NEVER_ROUTED_TO_CLD3):
                cases[route] = cases.get(route, 0) + 1
    counts = _Counts(gold, [*current.tolist(), *(c for a in answers.values() for c in a.tolist())], [1.0])

    def quality(codes: np.ndarray) -> float:
        return counts.macro_f1(np.array([counts.index.get(code, -1) for code in codes], dtype=np.int64))

    best = quality(current)
    kept: list[Route] = []
    for route in sorted((r for r, n in cases.items() if n >= MIN_ROUTE_CASES), key=lambda r: (-cases[r], r)):
        trial = np.where((current == route.fused) & (answers[route.identifier] == route.answer), route.answer, current)
        score = quality(trial)
        if score > best + MIN_ROUTE_GAIN:
            kept.append(route)
            current, best = trial, score
    return kept
