"""Training: sentence cutting, Nemotron-4 settings in the model, the card, refusals and re-runs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import sentencepiece as spm
from hypothesis import given, settings
from hypothesis import strategies as st

from corpusmill.curation.atomic import read_json
from corpusmill.curation.executor import SerialExecutor
from corpusmill.curation.progress import RecordingProgress
from corpusmill.curation.stage import StageConfigMismatch
from corpusmill.tokenizer.card import CARD_FILE, TokenizerCard
from corpusmill.tokenizer.codec import MODEL_FILE
from corpusmill.tokenizer.train_stage import VOCAB_FILE, TrainOptions, train_tokenizer
from corpusmill.tokenizer.training import TrainingError, TrainSettings, check_fits, chunk_document

from .conftest import TINY_VOCAB


def _train(sample: Path, out: Path, settings: TrainSettings, progress: RecordingProgress | None = None):
    options = TrainOptions(input=str(sample), out=str(out), **asdict(settings))
    return train_tokenizer(options, executor=SerialExecutor(progress))


@settings(max_examples=150, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=400), max_bytes=st.integers(4, 64))
def test_chunks_rebuild_the_document_and_respect_the_byte_limit(text, max_bytes):
    chunks = list(chunk_document(text, max_bytes))
    assert "".join(chunks) == text
    assert all(0 < len(chunk.encode()) <= max_bytes for chunk in chunks)


def test_chunks_end_at_line_ends_when_lines_fit():
    text = "alpha\nbeta\n\ngamma delta\n"
    assert list(chunk_document(text, 12)) == ["alpha\nbeta\n\n", "gamma delta\n"]


def _processor(model_dir: Path) -> spm.SentencePieceProcessor:
    return spm.SentencePieceProcessor(model_file=str(model_dir / MODEL_FILE))


def test_model_has_the_documented_special_ids_user_symbols_bytes_and_whitespace_pieces(tiny_model):
    processor = _processor(tiny_model)
    assert processor.get_piece_size() == TINY_VOCAB
    assert [processor.id_to_piece(i) for i in range(5)] == ["<unk>", "<s>", "</s>", "<pad>", "<mask>"]
    assert (processor.unk_id(), processor.bos_id(), processor.eos_id(), processor.pad_id()) == (0, 1, 2, 3)
    assert sum(processor.is_byte(i) for i in range(TINY_VOCAB)) == 256
    pieces = {processor.id_to_piece(i) for i in range(TINY_VOCAB)}
    assert {"\n", "\t"} <= pieces  # learned as pieces, not byte fallbacks
    assert "\u2581\u2581\u2581\u2581" in pieces  # whitespace-only pieces (indentation) are allowed
    spec = processor.serialized_model_proto()
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    proto = model_pb2.ModelProto.FromString(spec)
    assert proto.trainer_spec.model_type == model_pb2.TrainerSpec.BPE
    assert proto.trainer_spec.split_digits and proto.trainer_spec.byte_fallback
    assert proto.normalizer_spec.name == "identity"
    assert not proto.normalizer_spec.remove_extra_whitespaces and not proto.normalizer_spec.add_dummy_prefix


def test_no_piece_joins_a_digit_to_anything(tiny_model):
    processor = _processor(tiny_model)
    with_digits = [
        piece
        for piece in (processor.id_to_piece(i) for i in range(TINY_VOCAB))
        if any(c in "0123456789" for c in piece) and not processor.is_byte(processor.piece_to_id(piece))
    ]
    assert sorted(with_digits) == list("0123456789")


def test_card_and_vocab_describe_the_model(tiny_model):
    card = read_json(tiny_model / CARD_FILE)
    model_bytes = (tiny_model / MODEL_FILE).read_bytes()
    assert card["model_sha256"] == hashlib.sha256(model_bytes).hexdigest()
    assert card["settings"]["vocab_size"] == TINY_VOCAB
    assert card["special_ids"] == {"<unk>": 0, "<s>": 1, "</s>": 2, "<pad>": 3}
    assert card["sentencepiece_options"]["allow_whitespace_only_pieces"] is True
    composition = card["sample"]["composition"]
    assert composition["by_category"]["multilingual"]["bytes_after"] > 0
    assert card["sample"]["bytes"] == composition["total"]["bytes_after"]
    assert card["peak_rss_bytes"] > 10 * 2**20 and card["wall_seconds"] > 0
    assert card["sentences_seen"] >= card["sample"]["documents"]
    lines = (tiny_model / VOCAB_FILE).read_text(encoding="utf-8").splitlines()
    processor = _processor(tiny_model)
    assert len(lines) == TINY_VOCAB
    newline_id = processor.piece_to_id("\n")
    assert lines[newline_id].split("\t")[0] == "\\n"
    assert json.loads('"' + lines[100].split("\t")[0] + '"') == processor.id_to_piece(100)
    typed = TokenizerCard.read(tiny_model)
    assert typed.to_dict() == card and typed.vocab_size == TINY_VOCAB == processor.get_piece_size()
    assert typed.special_ids["</s>"] == processor.eos_id() and typed.model_sha256 == card["model_sha256"]
    assert card["stage"] == "tokenizer_train" and card["config"] == card["fingerprint"]


def test_rerun_is_a_no_op_and_other_settings_are_refused(tiny_model):
    card = read_json(tiny_model / CARD_FILE)
    sample = Path(card["sample"]["path"])
    settings_used = TrainSettings.from_record(card["settings"])
    before = (tiny_model / MODEL_FILE).stat().st_mtime_ns
    progress = RecordingProgress()
    assert _train(sample, tiny_model, settings_used, progress).to_dict() == card
    assert any("already complete" in note for note in progress.notes)
    assert (tiny_model / MODEL_FILE).stat().st_mtime_ns == before
    with pytest.raises(StageConfigMismatch, match="--overwrite"):
        _train(sample, tiny_model, replace(settings_used, vocab_size=TINY_VOCAB + 8))


def test_a_vocabulary_larger_than_the_sample_allows_is_refused_with_the_fix(tiny_model, tmp_path):
    sample = Path(read_json(tiny_model / CARD_FILE)["sample"]["path"])
    with pytest.raises(TrainingError, match="lower it or draw a larger sample"):
        _train(sample, tmp_path / "huge", TrainSettings(vocab_size=400_000, num_threads=2))
    assert not (tmp_path / "huge" / MODEL_FILE).exists()


def test_settings_that_cannot_fit_in_memory_are_refused_before_training():
    settings_256k = TrainSettings()
    with pytest.raises(TrainingError, match=r"pass --max-sentences [\d,]+"):
        check_fits(50 * 2**30, settings_256k, memory_limit=8 * 2**30)
    capped = replace(settings_256k, max_sentences=100_000)
    assert check_fits(50 * 2**30, capped, memory_limit=8 * 2**30) < 8 * 2**30


def test_the_sentence_cap_changes_what_is_learned(tiny_model, tmp_path):
    sample = Path(read_json(tiny_model / CARD_FILE)["sample"]["path"])
    base = TrainSettings(vocab_size=700, character_coverage=0.995, num_threads=2)
    full = _train(sample, tmp_path / "full", base)
    capped = _train(sample, tmp_path / "capped", replace(base, max_sentences=101))
    assert capped.sentences_seen == full.sentences_seen > 101
    assert capped.sentences_loaded == 101
    assert capped.model_sha256 != full.model_sha256
    with pytest.raises(TrainingError, match="more than 100"):
        _train(sample, tmp_path / "tiny_cap", replace(base, max_sentences=100))
