"""The classify stage's batch function: add language and code labels to every document.

Decision order for ``code_lang`` (first that answers wins, recorded in ``code_lang_source``):
``path`` (file name, then extension), ``shebang`` (first line), ``content`` (the fastText code
model, only when its top label is a language scoring at least ``min_code_score``).
``category`` is ``code`` when any of them answered, else ``english`` when ``lang`` is one of
``english_langs``, else ``multilingual`` (which includes ``und``: not known to be English).
"""

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpusmill.curation.classify.code_lang import language_from_path, language_from_shebang
from corpusmill.curation.classify.code_model import DEFAULT_CODE_MAX_CHARS, DEFAULT_MIN_CODE_SCORE, CodeClassifier
from corpusmill.curation.classify.labels import CATEGORIES, CODE_LANG_SOURCES, OUTPUT_SCHEMA
from corpusmill.curation.classify.langid import DEFAULT_LID_MAX_CHARS, DEFAULT_MIN_LANG_SCORE, LanguageIdentifier

HEAD_CHARS = 8192
"""Characters of a document the path (``.h``) and shebang rules look at."""


@dataclass(frozen=True)
class ClassifyConfig:
    """Every threshold of the stage; `corpusmill classify --help` documents the defaults."""

    lid_model: str | None = None
    code_model: str | None = None
    min_lang_score: float = DEFAULT_MIN_LANG_SCORE
    english_langs: tuple[str, ...] = ("en",)
    lid_max_chars: int = DEFAULT_LID_MAX_CHARS
    min_code_score: float = DEFAULT_MIN_CODE_SCORE
    code_max_chars: int = DEFAULT_CODE_MAX_CHARS
    path_column: str = "path"
    threads: int = 1


class DocumentClassifier:
    """Loads both models once (per Ray worker) and labels Arrow batches; keeps every input column."""

    def __init__(self, config: ClassifyConfig | None = None) -> None:
        config = config or ClassifyConfig()
        self.config = config
        self.language_identifier = LanguageIdentifier(
            config.lid_model, config.min_lang_score, config.lid_max_chars, config.threads
        )
        self.code_classifier = CodeClassifier(
            config.code_model, config.min_code_score, config.code_max_chars, config.threads
        )

    def __call__(self, table: pa.Table) -> pa.Table:
        texts = table.column("text")
        languages = self.language_identifier.predict(texts)
        code_langs, sources = self._code_languages(table, texts)
        english = set(self.config.english_langs)
        categories = [
            "code" if code_lang else ("english" if lang in english else "multilingual")
            for code_lang, lang in zip(code_langs, languages.langs)
        ]
        labels = [languages.langs, languages.scores, categories, code_langs, sources]
        for field, values in zip(OUTPUT_SCHEMA, labels):
            table = _set_column(table, field, pa.array(values, field.type))
        return table

    def _code_languages(self, table: pa.Table, texts: pa.ChunkedArray) -> tuple[list, list]:
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


def _set_column(table: pa.Table, field: pa.Field, values: pa.Array) -> pa.Table:
    """Add a label column, or replace it when the input was classified before."""
    if field.name in table.column_names:
        return table.set_column(table.column_names.index(field.name), field, values)
    return table.append_column(field, values)
