"""Labelled real documents for the classify benchmarks, built from files on this machine.

Natural languages: gettext catalogs (``/usr/share/locale/<locale>/LC_MESSAGES/*.mo``): the
translations are real sentences written by people in that language, and the message ids are
the English originals. No fastText language-ID model was trained on them.
Programming languages: the held-out side of `curation.classify.code_corpus`'s split, which
`train-code-model` never trains on.
"""

from __future__ import annotations

import gettext
from glob import glob

from corpusmill.curation.classify.code_corpus import ARCHIVE_SEPARATOR, SourceFile, default_source_roots, sample_corpus

LOCALE_LANGUAGES = {
    "de": "de",
    "fr": "fr",
    "es": "es",
    "it": "it",
    "pt_BR": "pt",
    "ru": "ru",
    "ja": "ja",
    "zh_CN": "zh",
    "pl": "pl",
    "nl": "nl",
    "sv": "sv",
    "cs": "cs",
    "uk": "uk",
    "tr": "tr",
    "ko": "ko",
}
"""Locale directory -> ISO 639-1 code of the language its catalogs are written in."""
ENGLISH_SOURCE_LOCALE = "de"
"""English documents are built from the message ids of this locale's catalogs."""


def catalog_messages(path: str, originals: bool = False) -> list[str]:
    """Translated messages of one catalog (or, with ``originals``, the English message ids)."""
    try:
        with open(path, "rb") as handle:
            catalog = gettext.GNUTranslations(handle)._catalog
    except (OSError, UnicodeDecodeError, ValueError):
        return []
    pairs = [(key, value) for key, value in catalog.items() if isinstance(key, str) and key and isinstance(value, str)]
    return [key if originals else value for key, value in pairs]


def chunk_messages(messages: list[str], min_chars: int, max_chars: int, limit: int) -> list[str]:
    """Join consecutive messages into documents of ``min_chars``..``max_chars`` characters."""
    documents, current = [], ""
    for message in messages:
        current += message.strip() + "\n"
        if len(current) >= min_chars:
            documents.append(current[:max_chars])
            current = ""
            if len(documents) == limit:
                break
    return documents


def language_documents(per_language: int, min_chars: int = 250, max_chars: int = 1200) -> list[tuple[str, str]]:
    """``(iso_code, text)`` pairs: up to ``per_language`` documents per language, 8 per catalog."""
    labelled = []
    sources = [(locale, code, False) for locale, code in LOCALE_LANGUAGES.items()]
    sources.append((ENGLISH_SOURCE_LOCALE, "en", True))
    for locale, code, originals in sources:
        documents: list[str] = []
        for path in sorted(glob(f"/usr/share/locale/{locale}/LC_MESSAGES/*.mo")):
            messages = [m for m in catalog_messages(path, originals) if len(m) >= 20]
            documents += chunk_messages(messages, min_chars, max_chars, limit=8)
            if len(documents) >= per_language:
                break
        labelled += [(code, document) for document in documents[:per_language]]
    return labelled


def held_out_code_documents(per_language: int) -> dict[str, list[tuple[SourceFile, str]]]:
    """Test-split files per label (code languages and ``prose``), never seen by train-code-model."""
    corpus = sample_corpus(default_source_roots(), {"train": 0, "test": per_language}, min_train_files=0)
    return {label: items for label, items in corpus.items() if items}


def member_path(file: SourceFile) -> str:
    """The path a document would carry in a code dataset (the archive member for zip files)."""
    return file.location.split(ARCHIVE_SEPARATOR)[-1]
