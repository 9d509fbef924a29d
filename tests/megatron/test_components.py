"""Component keys, held-out splits, prefix names, and routing tokens into per-component parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from corpusmill.curation.dataset import DatasetError
from corpusmill.curation.megatron.components import (
    check_key_columns,
    component_values,
    holdout_splits,
    prefix_names,
)
from corpusmill.curation.megatron.indexed import IndexedReader
from corpusmill.curation.megatron.parts import ComponentParts


def test_language_is_code_lang_for_code_and_lang_otherwise() -> None:
    table = pa.table(
        {
            "category": ["code", "english", "multilingual", None, "code", "unknown"],
            "lang": ["en", "en", "de", "fr", "en", "und"],
            "code_lang": ["python", None, None, None, None, None],
            "source": ["gh", "web", "web", "web", None, "web"],
            "stars": [3, None, 1, 2, 5, 4],
        }
    )
    assert component_values(table, ("category", "language", "source", "stars")) == [
        ("code", "python", "gh", "3"),
        ("english", "en", "web", "unknown"),
        ("multilingual", "de", "web", "1"),
        ("unknown", "fr", "web", "2"),
        ("code", "unknown", "unknown", "5"),
        ("unknown", "und", "web", "4"),  # classify's `unknown` category: its own component, never multilingual
    ]


def test_missing_columns_name_the_fix() -> None:
    with pytest.raises(DatasetError, match=r"no column\(s\) \['category', 'lang', 'code_lang'\].*corpusmill classify"):
        check_key_columns(["id", "text", "source"], ("category", "language", "source"), "in")
    check_key_columns(["id", "text", "source"], ("source",), "in")
    with pytest.raises(DatasetError, match="reserved"):
        check_key_columns(["split"], ("split",), "in")


def test_holdout_is_a_stable_function_of_the_id() -> None:
    ids = [f"doc-{i}" for i in range(20_000)]
    splits = holdout_splits(ids, 0.05, 0.02)
    assert holdout_splits(ids[::-1], 0.05, 0.02) == splits[::-1]
    counts = {split: splits.count(split) / len(ids) for split in ("train", "valid", "test")}
    assert counts["valid"] == pytest.approx(0.05, abs=0.006) and counts["test"] == pytest.approx(0.02, abs=0.004)
    assert holdout_splits(ids[:5], 0.0, 0.0) == ["train"] * 5


def test_prefix_names_are_readable_and_unique() -> None:
    components = [
        {"category": "code", "language": "c++", "source": "git hub", "split": "train"},
        {"category": "code", "language": "c++", "source": "git/hub", "split": "train"},
        {"category": "english", "language": "en", "source": "web.crawl", "split": "valid"},
        {"category": "english", "language": "en", "source": "日本", "split": "train"},
    ]
    names = prefix_names(components)
    assert names[2] == "english.en.web_crawl.valid"
    assert (
        names[0].startswith("code.c++.git_hub-") and names[1].startswith("code.c++.git_hub-") and names[0] != names[1]
    )
    assert names[3].startswith("english.en._-")
    assert len(set(names)) == 4 and all("/" not in name and " " not in name for name in names)


def test_parts_keep_each_components_documents_in_order(tmp_path: Path) -> None:
    lengths = np.array([3, 1, 4, 2, 5])
    tokens = np.arange(lengths.sum())
    components = [("a",), ("b",), ("a",), ("c",), ("b",)]
    with ComponentParts(tmp_path, "s00000", np.dtype(np.uint16), ("source",)) as parts:
        parts.add(components, tokens, lengths, np.array([30, 10, 40, 20, 50]))
        parts.add([("c",)], np.array([7, 7]), np.array([2]), np.array([9]))
    records = {record["keys"]["source"]: record for record in parts.records(tmp_path)}
    expected = {"a": [[0, 1, 2], [4, 5, 6, 7]], "b": [[3], [10, 11, 12, 13, 14]], "c": [[8, 9], [7, 7]]}
    for source, documents in expected.items():
        reader = IndexedReader(tmp_path / records[source]["part"])
        assert [reader.sequence(i).tolist() for i in range(len(reader))] == documents
    assert {s: r["text_bytes"] for s, r in records.items()} == {"a": 70, "b": 60, "c": 29}
    assert {s: r["tokens"] for s, r in records.items()} == {"a": 7, "b": 6, "c": 4}
