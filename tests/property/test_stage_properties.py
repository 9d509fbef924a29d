"""Property-based tests of every stage's batch function (issue 15): any batch of documents, and
nothing crashes and no row is lost: each row is kept, removed or rejected exactly once.

Batches hold any Unicode (NUL, controls, every plane; text inside a dataset is valid UTF-8,
so lone surrogates are ingest's to reject, see test_ingest_properties.py), empty and
whitespace-only texts, huge documents, many tiny ones, duplicates, and annotation columns
with nulls. The stage-level test runs dedup exact and select on such a dataset and checks
stats.json: in = out + removed + rejected, in documents and bytes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpusmill.curation.atomic import read_json
from corpusmill.curation.classify.annotate import DocumentClassifier
from corpusmill.curation.dedup.exact import select_duplicates, text_hashes
from corpusmill.curation.dedup.exact_stage import DedupExactOptions, dedup_exact
from corpusmill.curation.dedup.minhash import MinHasher
from corpusmill.curation.dedup.shingles import shingle_hashes
from corpusmill.curation.executor import SerialExecutor
from corpusmill.curation.ingest.stage import IngestOptions, ingest
from corpusmill.curation.megatron.encoder import DocumentEncoder, describe_tokenizer
from corpusmill.curation.quality.stage import BucketRule, Models, Scoring, annotate
from corpusmill.curation.select.expression import columns_from_schemas, compile_predicate
from corpusmill.curation.select.stage import SelectOptions, _Selector, select
from tests.megatron.conftest import train_tokenizer

CHEAP = settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)

any_text = st.text(st.characters(codec="utf-8"), max_size=60)
words = st.lists(st.sampled_from(["the", "data", "Daten", "données", "数据", "def", "return", "x", "\x00", "\t"]),
                 max_size=30).map(" ".join)  # fmt: skip


@st.composite
def texts(draw: st.DrawFn) -> list[str]:
    """A batch's texts: random Unicode, word salad, blanks, a huge document, tiny ones, duplicates."""
    batch = draw(st.lists(st.one_of(any_text, words, st.sampled_from(["", " ", "\n\n", "\x00"])), max_size=30))
    if draw(st.integers(0, 4)) == 0:
        batch.append(draw(st.sampled_from(["word ", "\x00", "é", "🙂"])) * draw(st.integers(100_000, 300_000)))
    if draw(st.integers(0, 4)) == 0:
        batch += ["a"] * 2000
    if batch and draw(st.booleans()):
        batch += draw(st.lists(st.sampled_from(batch), max_size=5))  # exact duplicates
    return batch


def document_table(batch: list[str], draw_lang: list[str | None]) -> pa.Table:
    rows = len(batch)
    return pa.table(
        {
            "id": [f"d{i}" for i in range(rows)],
            "text": pa.array(batch, pa.string()),
            "source": [("web", "code", "wiki")[i % 3] for i in range(rows)],
            "lang": draw_lang[:rows] + [None] * (rows - len(draw_lang)),
            "category": [("english", "code", "multilingual", None)[i % 4] for i in range(rows)],
            "n": pa.array([None if i % 5 == 0 else i for i in range(rows)], pa.int64()),
        }
    )


langs = st.lists(st.sampled_from(["en", "de", "und", None]), max_size=40)


@CHEAP
@given(batch=texts())
def test_exact_dedup_keeps_one_row_per_distinct_text(batch: list[str]) -> None:
    hi, lo = text_hashes(pa.array(batch, pa.string()))
    hashed = pa.table({"hi": hi, "lo": lo, "id": [f"d{i:06d}" for i in range(len(batch))]})
    removed, groups = select_duplicates(hashed)
    assert len(batch) - removed.num_rows == len(set(batch))
    assert groups == sum(1 for count in Counter(batch).values() if count > 1)


@CHEAP
@given(batch=texts())
def test_fuzzy_signatures_exist_for_every_document_and_agree_on_copies(batch: list[str]) -> None:
    hasher = MinHasher(num_perm=16, ngram=3)
    signatures = hasher.signatures(pa.array(batch, pa.string()))
    assert signatures.shape == (len(batch), 16) and signatures.dtype == hasher.dtype
    hashes, offsets = shingle_hashes(pa.array(batch, pa.string()), 3)
    assert len(offsets) == len(batch) + 1 and offsets[-1] == len(hashes)
    first = {}
    for row, text in enumerate(batch):
        if text in first:
            assert np.array_equal(signatures[row], signatures[first[text]])
        first.setdefault(text, row)


@pytest.fixture(scope="module")
def classifier() -> DocumentClassifier:
    return DocumentClassifier(threads=1)


@CHEAP
@given(batch=texts(), lang=langs)
def test_classify_labels_every_row(classifier: DocumentClassifier, batch: list[str], lang: list) -> None:
    table = document_table(batch, lang)
    labelled = classifier(table)
    assert labelled.num_rows == table.num_rows
    assert labelled["id"].equals(table["id"])
    assert set(labelled["category"].to_pylist()) <= {"english", "multilingual", "code", "unknown"}
    assert labelled["lang"].null_count == 0


@pytest.fixture(scope="module")
def rule_models() -> Models:
    return Models(Scoring(lms=(), rules=True, rule_langs=("en", "de"), max_rule_chars=20_000))


@CHEAP
@given(batch=texts(), lang=langs)
def test_quality_annotates_every_row(rule_models: Models, batch: list[str], lang: list) -> None:
    table = document_table(batch, lang)
    counters: Counter[str] = Counter()
    ppl = rule_models.perplexities(table)
    annotated = annotate(table, ppl, rule_models, {}, BucketRule(), counters)
    assert annotated.num_rows == table.num_rows and annotated["id"].equals(table["id"])
    assert annotated["quality_bucket"].null_count == 0
    assert sum(value for key, value in counters.items() if key.startswith("quality_bucket.")) == table.num_rows


@CHEAP
@given(batch=texts(), lang=langs, where=st.sampled_from(["lang == 'en' or n > 3", "not (n is null)", "text == ''",
                                                          "source in ['x', 'web'] or category is null"]))
def test_select_splits_every_row_once(batch: list[str], lang: list, where: str) -> None:
    table = document_table(batch, lang)
    predicate = compile_predicate(where, columns_from_schemas([table.schema]))
    outcome = _Selector(predicate, [])(table)
    kept, removed = set(outcome.kept["id"].to_pylist()), set(outcome.removed["select"]["id"].to_pylist())
    assert kept.isdisjoint(removed) and kept | removed == set(table["id"].to_pylist())


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> DocumentEncoder:
    corpus = [f"{word} data {index} Daten données 数据 def return" for index, word in enumerate("abcdefghij" * 30)]
    model = train_tokenizer(tmp_path_factory.mktemp("tok") / "small", corpus, 300)
    return DocumentEncoder(describe_tokenizer(model))


@CHEAP
@given(batch=texts())
def test_tokenize_encodes_every_document(encoder: DocumentEncoder, batch: list[str]) -> None:
    encoded = encoder.encode(batch)
    assert len(encoded.lengths) == len(batch) and int(encoded.lengths.sum()) == len(encoded.tokens)
    ends = np.cumsum(encoded.lengths)[encoded.lengths > 0] - 1
    assert (encoded.tokens[ends] == encoder.info.eod_id).all()
    assert (encoded.tokens < encoder.info.vocab_size).all()
    # Normalisation may drop control and format characters (the stage rejects a document left
    # with no token); a letter or digit always encodes.
    assert all(length > 0 for text, length in zip(batch, encoded.lengths) if any(ch.isalnum() for ch in text))


def check_accounting(out: Path) -> None:
    stats = read_json(out / "stats.json")
    for unit in ("docs", "bytes"):
        parts = sum(counts[unit] for part in ("removed", "rejected") for counts in stats[part].values())
        assert stats["in"][unit] == stats["out"][unit] + parts, (unit, stats)


@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(batch=texts().filter(bool), lang=langs)
def test_stages_account_for_every_document(tmp_path_factory: pytest.TempPathFactory, batch: list[str], lang: list) -> None:
    root = tmp_path_factory.mktemp("stages")
    pq.write_table(document_table(batch, lang).drop_columns(["id"]), root / "docs.parquet")
    executor = SerialExecutor()
    ingest(IngestOptions(inputs=(str(root / "docs.parquet"),), out=str(root / "ingested")), executor=executor)
    dedup_exact(DedupExactOptions(input=str(root / "ingested"), out=str(root / "exact")), executor=executor)
    select(SelectOptions(input=str(root / "exact"), out=str(root / "selected"), where="n > 3"), executor=executor)
    for stage in ("ingested", "exact", "selected"):
        check_accounting(root / stage)
