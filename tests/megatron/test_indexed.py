"""The indexed format against megatron-core's own writer and reader, byte for byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sentencepiece

from corpusmill.curation.megatron.indexed import (
    IndexedFormatError,
    IndexedReader,
    IndexedWriter,
    bin_path,
    idx_path,
    token_dtype,
)

indexed_dataset = pytest.importorskip("megatron.core.datasets.indexed_dataset")


def _documents(model: Path, rows: list[dict[str, object]], count: int) -> list[np.ndarray]:
    processor = sentencepiece.SentencePieceProcessor(model_file=str(model))
    texts = [str(row["text"]) for row in rows[:count]]
    return [np.array(ids + [processor.eos_id()]) for ids in processor.encode(texts)]


def _write_ours(prefix: Path, documents: list[np.ndarray], dtype: np.dtype, batches: int = 3) -> None:
    with IndexedWriter(prefix, dtype) as writer:
        for batch in np.array_split(np.arange(len(documents)), batches):
            chosen = [documents[i] for i in batch]
            writer.add_documents(np.concatenate(chosen) if chosen else np.zeros(0), [len(d) for d in chosen])


def _write_megatron(prefix: Path, documents: list[np.ndarray], dtype: np.dtype) -> None:
    builder = indexed_dataset.IndexedDatasetBuilder(str(bin_path(prefix)), dtype=dtype.type)
    for document in documents:
        builder.add_document(document, [len(document)])
    builder.finalize(str(idx_path(prefix)))


@pytest.mark.parametrize("big", [False, True], ids=["uint16", "int32"])
def test_files_are_byte_identical_to_megatrons_builder(
    tmp_path: Path, tokenizer_model: Path, big_tokenizer_model: Path, real_rows: list[dict[str, object]], big: bool
) -> None:
    model = big_tokenizer_model if big else tokenizer_model
    vocab = sentencepiece.SentencePieceProcessor(model_file=str(model)).vocab_size()
    dtype = token_dtype(vocab)
    assert dtype == np.dtype(indexed_dataset.DType.optimal_dtype(vocab))
    documents = _documents(model, real_rows, 30)
    if big:
        assert max(int(d.max()) for d in documents) > 65_535
    _write_ours(tmp_path / "ours", documents, dtype)
    _write_megatron(tmp_path / "megatron", documents, dtype)
    for path in (bin_path, idx_path):
        assert path(tmp_path / "ours").read_bytes() == path(tmp_path / "megatron").read_bytes()
    read_by_megatron = indexed_dataset.IndexedDataset(str(tmp_path / "ours"))
    assert len(read_by_megatron) == len(documents)
    for index, document in enumerate(documents):
        np.testing.assert_array_equal(read_by_megatron[index], document)


def test_reader_reads_megatrons_files(
    tmp_path: Path, tokenizer_model: Path, real_rows: list[dict[str, object]]
) -> None:
    documents = _documents(tokenizer_model, real_rows, 12)
    _write_megatron(tmp_path / "m", documents, np.dtype(np.uint16))
    reader = IndexedReader(tmp_path / "m")
    assert (len(reader), reader.num_documents, reader.dtype) == (12, 12, np.dtype(np.uint16))
    assert reader.num_tokens == sum(len(d) for d in documents)
    for index, document in enumerate(documents):
        np.testing.assert_array_equal(reader.sequence(index), document)


def test_token_dtype_switches_at_megatrons_limit() -> None:
    for vocab in (1000, 65_499, 65_500, 65_536, 256_000):
        assert token_dtype(vocab) == np.dtype(indexed_dataset.DType.optimal_dtype(vocab))
    assert token_dtype(65_499) == np.uint16 and token_dtype(65_500) == np.int32


def test_appending_prefixes_equals_writing_once(
    tmp_path: Path, tokenizer_model: Path, real_rows: list[dict[str, object]]
) -> None:
    documents = _documents(tokenizer_model, real_rows, 20)
    _write_ours(tmp_path / "a", documents[:7], np.dtype(np.uint16))
    _write_ours(tmp_path / "b", documents[7:], np.dtype(np.uint16))
    _write_ours(tmp_path / "whole", documents, np.dtype(np.uint16))
    with IndexedWriter(tmp_path / "merged", np.dtype(np.uint16)) as writer:
        writer.append_prefix(tmp_path / "a")
        writer.append_prefix(tmp_path / "b")
    assert (writer.documents, writer.tokens) == (20, sum(len(d) for d in documents))
    for path in (bin_path, idx_path):
        assert path(tmp_path / "merged").read_bytes() == path(tmp_path / "whole").read_bytes()
    with pytest.raises(IndexedFormatError, match="dtype"), IndexedWriter(tmp_path / "wide", np.dtype(np.int32)) as wide:
        wide.append_prefix(tmp_path / "a")


def test_a_failed_write_leaves_no_files(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), IndexedWriter(tmp_path / "p", np.dtype(np.uint16)) as writer:
        writer.add_documents(np.arange(10), [4, 6])
        raise RuntimeError("worker died")
    assert list(tmp_path.iterdir()) == []
    with (
        pytest.raises(ValueError, match="lengths sum to 5"),
        IndexedWriter(tmp_path / "q", np.dtype(np.uint16)) as writer,
    ):
        writer.add_documents(np.arange(10), [5])
    assert list(tmp_path.iterdir()) == []


def test_reader_refuses_damaged_prefixes(tmp_path: Path) -> None:
    with IndexedWriter(tmp_path / "p", np.dtype(np.uint16)) as writer:
        writer.add_documents(np.arange(10), [4, 6])
    reader = IndexedReader(tmp_path / "p")
    np.testing.assert_array_equal(reader.sequence(1), np.arange(4, 10))
    bin_path(tmp_path / "p").write_bytes(bin_path(tmp_path / "p").read_bytes()[:-2])
    with pytest.raises(IndexedFormatError, match="damaged or mixed"):
        IndexedReader(tmp_path / "p").sequence(0)
    idx_path(tmp_path / "p").write_bytes(idx_path(tmp_path / "p").read_bytes()[:-8])
    with pytest.raises(IndexedFormatError, match="damaged"):
        IndexedReader(tmp_path / "p")
    idx_path(tmp_path / "p").write_bytes(b"NOTANIDX" + bytes(40))
    with pytest.raises(IndexedFormatError, match="not a Megatron indexed dataset"):
        IndexedReader(tmp_path / "p")
