"""`corpusmill lm train`: a real KenLM model that orders real text before shuffled text, its card,
the language filter, resume, and the one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from corpusmill.curation.errors import CorpusmillError
from corpusmill.curation.executor import SerialExecutor
from corpusmill.curation.progress import RecordingProgress
from corpusmill.curation.quality import kenlm_tools
from corpusmill.curation.quality.lm_card import CARD_FILE, LMCard, LMDirectory
from corpusmill.curation.quality.lm_train_stage import EmptyCorpusError, LMTrainOptions, train_lm
from corpusmill.curation.quality.normalize import normalized_lines
from corpusmill.curation.quality.perplexity import DocumentScorer


def test_unseen_paragraphs_score_lower_than_their_shuffled_words(
    english_lm: LMDirectory, paragraphs, shuffled_words
) -> None:
    scorer = DocumentScorer.open(english_lm)
    unseen = paragraphs(1)[:300]
    assert len(unseen) >= 200
    real = scorer.perplexities(unseen)
    shuffled = scorer.perplexities([shuffled_words(text, seed) for seed, text in enumerate(unseen)])
    assert np.isfinite(real).all() and np.isfinite(shuffled).all()
    assert np.mean(real < shuffled) >= 0.97
    assert np.median(shuffled) > 2 * np.median(real)


def test_card_describes_the_model_and_its_corpus(english_lm: LMDirectory) -> None:
    card = english_lm.card
    assert (card.language, card.order, card.normalization) == ("en", 5, "ccnet")
    assert 100 < card.pieces <= 2000
    assert card.corpus["other_language_documents"] == 2  # the French rows were not used
    assert card.corpus["documents"] + card.held_out["documents"] == 40  # the 40 even topics
    assert card.held_out["documents"] >= 4 and card.held_out["scored"] == card.held_out["documents"]
    assert card.corpus["bytes"] > 100_000 and len(card.corpus["fingerprint"]) == 16
    for percentiles in (card.ppl_percentiles, card.train_ppl_percentiles):
        assert len(percentiles) == 101 and percentiles[0] > 1 and np.all(np.diff(percentiles) >= 0)
    # an n-gram model knows its own training text: held-out documents score higher
    assert np.median(card.ppl_percentiles) > np.median(card.train_ppl_percentiles)
    steps = card.training["steps"]
    assert "-S" in steps["lmplz"]["command"] and steps["lmplz"]["peak_rss_bytes"] > 0
    assert card.training["peak_rss_bytes"] >= steps["lmplz"]["peak_rss_bytes"]
    head, tail = card.cutoffs(30, 60)
    assert card.ppl_percentiles[30] == pytest.approx(head) and card.ppl_percentiles[60] == pytest.approx(tail)
    assert card.cutoffs(30.5, 60)[0] == pytest.approx((card.ppl_percentiles[30] + card.ppl_percentiles[31]) / 2)
    on_disk = json.loads((english_lm.root / CARD_FILE).read_text())
    assert LMCard.from_dict(on_disk, "card") == card
    assert sorted(path.name for path in english_lm.root.iterdir()) == [
        "_progress", "card.json", "lm.binary", "pieces.model"
    ]  # fmt: skip


def test_pieces_are_over_ccnet_normalised_text(english_lm: LMDirectory) -> None:
    scorer = DocumentScorer.open(english_lm)
    line = normalized_lines("In 2024, Ünïcode — “quoted”\tTEXT…")[0]
    assert line == 'in 0000, unicode  -  "quoted"text...'
    assert "".join(scorer.piece_lines([line])[0]).replace("▁", " ").strip() == line.replace("  ", " ")


def test_a_finished_model_is_reused_and_other_settings_are_refused(english_lm: LMDirectory) -> None:
    card = english_lm.card
    progress = RecordingProgress()
    again = LMTrainOptions(input=tuple(card.corpus["inputs"]), lang="en", out=str(english_lm.root), vocab_size=2000,
                           held_out_every=4)  # fmt: skip
    assert train_lm(again, executor=SerialExecutor(progress)) == card
    assert any("already complete" in note for note in progress.notes)
    with pytest.raises(CorpusmillError, match="other settings"):
        train_lm(LMTrainOptions(**{**again.__dict__, "order": 4}), executor=SerialExecutor())


def test_no_text_of_the_language_is_one_clear_error(english_lm: LMDirectory, tmp_path: Path) -> None:
    options = LMTrainOptions(input=tuple(english_lm.card.corpus["inputs"]), lang="de", out=str(tmp_path / "de"))
    with pytest.raises(EmptyCorpusError, match="no text of language .de.*42 documents of other languages"):
        train_lm(options, executor=SerialExecutor())


def test_missing_lmplz_names_the_setup_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, english_lm) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    options = LMTrainOptions(input=tuple(english_lm.card.corpus["inputs"]), lang="en", out=str(tmp_path / "lm"))
    with pytest.raises(kenlm_tools.KenLMToolsMissing) as error:
        train_lm(options, executor=SerialExecutor())
    message = str(error.value)
    assert "\n" not in message and "make install" in message and "lmplz" in message
    assert not (tmp_path / "lm").exists()  # refused before claiming the directory


def test_held_out_by_a_group_column_keeps_whole_groups_out(tmp_path: Path, paragraphs, documents_dir) -> None:
    import xxhash

    texts = paragraphs(0)[:240]
    groups = [f"file-{i // 8}" for i in range(len(texts))]  # 30 "files" of 8 parts each
    rows = {"id": [f"d{i}" for i in range(len(texts))], "text": texts, "source": ["s"] * len(texts), "file": groups}
    corpus = documents_dir(tmp_path / "corpus", rows)
    options = LMTrainOptions(input=(str(corpus),), lang="en", out=str(tmp_path / "lm"), vocab_size=500,
                             held_out_every=3, held_out_by="file")  # fmt: skip
    card = train_lm(options, executor=SerialExecutor())
    held_groups = {g for g in set(groups) if xxhash.xxh64_intdigest(g) % 3 == 0}
    assert card.held_out["by"] == "file" and 0 < len(held_groups) < 30
    assert card.held_out["documents"] == 8 * len(held_groups)
    assert card.corpus["documents"] == len(texts) - 8 * len(held_groups)
    with pytest.raises(CorpusmillError, match="--held-out-by url: .* has no such column"):
        train_lm(LMTrainOptions(**{**options.__dict__, "held_out_by": "url", "out": str(tmp_path / "x")}),
                 executor=SerialExecutor())  # fmt: skip
    assert not (tmp_path / "x").exists()  # refused before claiming the directory
