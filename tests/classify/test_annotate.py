"""The batch function: every rule, every column kept, and bad input that must not break it."""

from __future__ import annotations

import pyarrow as pa
import pytest

from corpusmill.curation.classify.annotate import ClassifyConfig, DocumentClassifier
from corpusmill.curation.classify.labels import OUTPUT_SCHEMA
from corpusmill.curation.errors import ConfigError

LABEL_COLUMNS = OUTPUT_SCHEMA.names


@pytest.fixture(scope="module")
def classifier() -> DocumentClassifier:
    return DocumentClassifier()


def documents(texts: list, paths: list | None = None, **extra: list) -> pa.Table:
    strings = {
        "id": [f"d{i}" for i in range(len(texts))],
        "text": texts,
        "source": ["test"] * len(texts),
        **({"path": paths} if paths is not None else {}),
    }
    return pa.table({**{name: pa.array(values, pa.string()) for name, values in strings.items()}, **extra})


def labels(table: pa.Table) -> list[dict]:
    return table.select(LABEL_COLUMNS).to_pylist()


def test_each_rule_and_its_source(classifier: DocumentClassifier, stdlib_dir, first_match, catalog_document) -> None:
    python_source = (stdlib_dir / "shutil.py").read_text()
    perl_source = first_match("/usr/share/perl/*/Text/Wrap.pm").read_text()
    french = catalog_document("fr", min_chars=600)
    english = first_match("/usr/share/common-licenses/Apache-2.0").read_text()[:3000]
    table = documents(
        [python_source, "all:\n\tcc -o hello hello.c\n", "#!/bin/sh\nexec true\n", perl_source, french, english],
        ["lib/shutil.py", "src/Makefile", None, None, None, "LICENSE"],
    )
    rows = labels(classifier(table))
    assert [(r["category"], r["code_lang"], r["code_lang_source"]) for r in rows] == [
        ("code", "Python", "path"),
        ("code", "Makefile", "path"),
        ("code", "Shell", "shebang"),
        ("code", "Perl", "content"),
        ("multilingual", None, None),
        ("english", None, None),
    ]
    assert [r["lang"] for r in rows[4:]] == ["fr", "en"]


def test_keeps_every_column_in_order_and_relabels_in_place(classifier: DocumentClassifier, catalog_document) -> None:
    table = documents(
        [catalog_document("de"), catalog_document("it")], ["a.txt", None], rank=[3, 1], meta=[{"k": 1}, None]
    )
    once = classifier(table)
    assert once.column_names == table.column_names + list(LABEL_COLUMNS)
    assert once.select(table.column_names).equals(table)
    assert once.schema.field("lang_score").type == pa.float32()
    twice = classifier(once)
    assert twice.column_names == once.column_names and twice.equals(once)


def test_english_langs_and_path_column_are_options(catalog_document) -> None:
    custom = DocumentClassifier(ClassifyConfig(english_langs=("en", "fr"), path_column="file"))
    table = documents([catalog_document("fr"), "print('hi')\n" * 20], file=[None, "x/tool.rb"])
    rows = labels(custom(table))
    assert rows[0]["category"] == "english" and rows[0]["lang"] == "fr"
    assert (rows[1]["code_lang"], rows[1]["code_lang_source"]) == ("Ruby", "path")


def test_low_confidence_is_und_and_not_english(catalog_document) -> None:
    strict = DocumentClassifier(ClassifyConfig(min_lang_score=0.999999))
    mixed = catalog_document("nl", skip=40)[:150] + " " + catalog_document("sv", skip=40)[:150]
    (row,) = labels(strict(documents([mixed])))
    assert row["lang"] == "und" and row["category"] == "unknown" and row["lang_score"] < 0.999999


def test_bad_input_is_labelled_not_fatal(classifier: DocumentClassifier, stdlib_dir) -> None:
    binary_ish = bytes(range(256)).decode("latin-1") * 50
    huge = (stdlib_dir / "shutil.py").read_text() * 800  # ~44 MB of Python
    rows = labels(classifier(documents(["", None, binary_ish, huge], [None, None, "blob.bin", None])))
    assert (
        rows[0]
        == rows[1]
        == {
            "lang": "und",
            "lang_score": 0.0,
            "lang_mix": None,
            "category": "unknown",
            "code_lang": None,
            "code_lang_source": None,
        }
    )
    assert rows[2]["category"] in ("code", "unknown")  # never prose of some language
    assert (rows[3]["category"], rows[3]["code_lang"], rows[3]["code_lang_source"]) == ("code", "Python", "content")


def test_empty_batch_gets_the_label_columns(classifier: DocumentClassifier) -> None:
    empty = documents([], [])
    out = classifier(empty)
    assert out.num_rows == 0 and out.schema.names == empty.schema.names + list(LABEL_COLUMNS)


def test_impossible_thresholds_are_refused_naming_the_flag() -> None:
    with pytest.raises(ConfigError, match="--min-lang-score"):
        ClassifyConfig(min_lang_score=1.5)
    with pytest.raises(ConfigError, match="--lid-max-chars"):
        ClassifyConfig(lid_max_chars=0)


def test_und_is_its_own_category_never_multilingual(classifier: DocumentClassifier, numpy_table_text) -> None:
    """A number table (numpy's own test data) is prose-shaped but not language: `unknown`, not `multilingual`."""
    (row,) = labels(classifier(documents([numpy_table_text])))
    assert (row["lang"], row["category"], row["code_lang"]) == ("und", "unknown", None)


def test_identifier_is_an_option(catalog_document) -> None:
    for lid in ("lid176", "heliport", "cld3"):
        (row,) = labels(DocumentClassifier(ClassifyConfig(lid=lid))(documents([catalog_document("es", min_chars=600)])))
        assert (row["lang"], row["category"]) == ("es", "multilingual"), lid
    with pytest.raises(ConfigError, match="--lid"):
        ClassifyConfig(lid="langdetect")
