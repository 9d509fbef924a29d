"""Encoding batches: tokens equal sentencepiece's, special tokens placed, unusable models refused."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import sentencepiece

from corpusmill.curation.megatron.encoder import DocumentEncoder, describe_tokenizer, file_sha256
from corpusmill.tokenizer.codec import ModelError


def _split(batch_tokens: np.ndarray, lengths: np.ndarray) -> list[list[int]]:
    bounds = np.cumsum(lengths)
    return [batch_tokens[end - length : end].tolist() for end, length in zip(bounds, lengths)]


@pytest.mark.parametrize("add_bos", [False, True])
def test_batches_encode_like_sentencepiece(
    tokenizer_model: Path, real_rows: list[dict[str, object]], add_bos: bool
) -> None:
    processor = sentencepiece.SentencePieceProcessor(model_file=str(tokenizer_model))
    texts = [str(row["text"]) for row in real_rows[::4]] + ["\u200b"]
    info = describe_tokenizer(tokenizer_model.parent, add_bos=add_bos)
    assert info.sha256 == file_sha256(tokenizer_model) and info.vocab_size == 800 and info.dtype == np.uint16
    encoded = DocumentEncoder(info).encode(texts)
    assert encoded.lengths[-1] == 0, "a text with no tokens gets no end-of-document either"
    bos = [processor.bos_id()] if add_bos else []
    expected = [bos + processor.encode(text) + [processor.eos_id()] for text in texts[:-1]]
    assert _split(encoded.tokens, encoded.lengths[:-1]) == expected


def _train(directory: Path, texts: list[str], **special: int) -> Path:
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=600, model_type="bpe",
        byte_fallback=True, max_sentence_length=1 << 20, minloglevel=2, **special,
    )  # fmt: skip
    directory.mkdir()
    (directory / "tokenizer.model").write_bytes(model.getvalue())
    return directory / "tokenizer.model"


def test_unusable_models_are_refused_with_the_fix(tmp_path: Path, real_rows: list[dict[str, object]]) -> None:
    texts = [str(row["text"]) for row in real_rows[:10]]
    no_eos = _train(tmp_path / "no_eos", texts, eos_id=-1)
    with pytest.raises(ModelError, match="no end-of-document token"):
        describe_tokenizer(no_eos)
    no_bos = _train(tmp_path / "no_bos", texts, bos_id=-1)
    assert describe_tokenizer(no_bos).bos_id is None
    with pytest.raises(ModelError, match="no BOS token"):
        describe_tokenizer(no_bos, add_bos=True)
    with pytest.raises(ModelError, match="no tokenizer.model"):
        describe_tokenizer(tmp_path / "missing")
    (tmp_path / "junk.model").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a SentencePiece model"):
        describe_tokenizer(tmp_path / "junk.model")


def test_a_changed_model_file_is_refused_by_workers(tmp_path: Path, tokenizer_model: Path) -> None:
    copy = tmp_path / "tokenizer.model"
    copy.write_bytes(tokenizer_model.read_bytes())
    info = describe_tokenizer(copy)
    copy.write_bytes(tokenizer_model.read_bytes() + b"\n")
    with pytest.raises(ModelError, match="model file changed"):
        DocumentEncoder(info)


def test_literal_space_symbol_is_encoded_with_the_lossless_codec(tokenizer_model: Path) -> None:
    from corpusmill.tokenizer.codec import Codec

    processor = sentencepiece.SentencePieceProcessor(model_file=str(tokenizer_model))
    text = "a\u2581b and \u2581\u2581"
    encoded = DocumentEncoder(describe_tokenizer(tokenizer_model)).encode([text])
    [tokens] = _split(encoded.tokens, encoded.lengths)
    assert tokens == Codec(tokenizer_model).encode(text) + [processor.eos_id()]
    byte_pieces = [processor.piece_to_id(f"<0x{b:02X}>") for b in "\u2581".encode()]
    assert tokens[1:4] == byte_pieces, "the literal U+2581 becomes its UTF-8 byte pieces, not a space"
    assert processor.encode(text) != tokens[:-1]
