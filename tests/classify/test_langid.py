"""Language ID on real translated text, text preparation, `und`, and code normalisation."""

from __future__ import annotations

import pyarrow as pa
import pytest

from corpusmill.curation.classify.iso639 import normalize_language_code
from corpusmill.curation.classify.labels import UNDETERMINED
from corpusmill.curation.classify.langid import LanguageIdentifier, prepare_texts
from corpusmill.curation.errors import MissingFileError

LOCALES = {
    "de": "de",
    "fr": "fr",
    "es": "es",
    "it": "it",
    "pt_BR": "pt",
    "ru": "ru",
    "ja": "ja",
    "zh_CN": "zh",
    "nl": "nl",
    "uk": "uk",
}


@pytest.fixture(scope="module")
def identifier() -> LanguageIdentifier:
    return LanguageIdentifier()


def test_real_translations_in_ten_languages(identifier: LanguageIdentifier, catalog_document) -> None:
    documents = [catalog_document(locale, skip=skip) for locale in LOCALES for skip in (0, 30)]
    predictions = identifier.predict(pa.array(documents))
    expected = [code for code in LOCALES.values() for _ in (0, 30)]
    # terse help text (`expr`'s operator list) may be `und` below its language's threshold, never wrong
    assert all(lang in (code, UNDETERMINED) for lang, code in zip(predictions.langs, expected))
    assert predictions.langs.count(UNDETERMINED) <= 1
    assert all(
        score >= identifier.thresholds.minimum(lang) for lang, score in zip(predictions.langs, predictions.scores)
    )


def test_preparation_makes_one_capped_line() -> None:
    texts = pa.array(["line one\nline two\r\n\ttabbed\x00nul\x07bell  ", None, "", "é" * 50])
    assert prepare_texts(texts, 1000) == ["line one line two tabbed nul bell", "", "", "é" * 50]
    assert prepare_texts(texts, 8) == ["line one", "", "", "é" * 8]


def test_empty_and_tiny_documents_are_und(identifier: LanguageIdentifier) -> None:
    predictions = identifier.predict(pa.array(["", "   \n\t", None, "x"]))
    assert predictions.langs == [UNDETERMINED] * 4
    assert list(predictions.scores[:3]) == [0.0, 0.0, 0.0]


def test_binary_ish_text_is_und(identifier: LanguageIdentifier) -> None:
    garbage = bytes(range(256)).decode("latin-1") * 40
    assert identifier.predict(pa.array([garbage])).langs == [UNDETERMINED]


def test_a_high_minimum_score_turns_guesses_into_und(catalog_document) -> None:
    strict = LanguageIdentifier(min_score=1.0)
    mixed = catalog_document("de")[:120] + " " + catalog_document("fr")[:120]
    predictions = strict.predict(pa.array([mixed]))
    assert predictions.langs == [UNDETERMINED] and 0.0 < predictions.scores[0] < 1.0


def test_huge_document_is_labelled_from_its_capped_prefix(identifier: LanguageIdentifier, catalog_document) -> None:
    document = catalog_document("sv", min_chars=2000)
    huge = document * (20_000_000 // len(document))
    whole, prefix = identifier.predict(pa.array([huge, huge[: identifier.max_chars]])).langs
    assert whole == prefix == "sv"


def test_thresholds_are_validated() -> None:
    with pytest.raises(ValueError, match="min_score"):
        LanguageIdentifier(min_score=1.5)
    with pytest.raises(ValueError, match="max_chars"):
        LanguageIdentifier(max_chars=0)


def test_missing_model_file_says_so(tmp_path) -> None:
    with pytest.raises(MissingFileError, match="not found"):
        LanguageIdentifier(model_path=tmp_path / "lid.bin")


@pytest.mark.parametrize(
    ("label", "code"),
    [
        ("__label__fr", "fr"),
        ("__label__ceb", "ceb"),
        ("eng_Latn", "en"),
        ("deu", "de"),
        ("ger", "de"),
        ("cmn_Hani", "zh"),
        ("zh-Hant", "zh"),
        ("als", "als"),
        ("__label__yue", "yue"),
    ],
)
def test_codes_are_iso_639_1_where_one_exists(label: str, code: str) -> None:
    assert normalize_language_code(label) == code
