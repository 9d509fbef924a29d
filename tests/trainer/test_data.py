"""Training data from the pipeline's own shards: Megatron's blend rule, epochs, samples, tokenizer checks."""

import json
import shutil

import numpy as np
import pytest

from corpusmill.curation.blend.trainer_blend import read_trainer_blend
from corpusmill.curation.megatron.indexed import IndexedReader
from corpusmill.pipelines.cli import main
from corpusmill.tokenizer.card import TokenizerCard
from corpusmill.trainer.data import CHUNK, BlendIndex, PhaseSamples, PrefixSamples, TokenizerMismatch, open_blend

SEQ = 128


def _megatron_blend(weights: np.ndarray, samples: int) -> tuple[np.ndarray, np.ndarray]:
    from megatron.core.datasets import helpers_cpp

    dataset_index = np.zeros(samples, dtype=np.int16)
    dataset_sample_index = np.zeros(samples, dtype=np.int64)
    helpers_cpp.build_blending_indices(dataset_index, dataset_sample_index, weights, len(weights), samples, False)
    return dataset_index, dataset_sample_index


def _train_weights(blend_dir) -> np.ndarray:
    return np.array([weight for _, weight in read_trainer_blend(blend_dir / "trainer.json").splits["train"]])


@pytest.mark.parametrize("case", ["resolved", "ties", "random"])
def test_blend_index_is_megatrons(case, pipeline_shards):
    weights = {
        "resolved": _train_weights(pipeline_shards.pretrain),
        "ties": np.array([0.25, 0.25, 0.5]),
        "random": np.random.default_rng(3).dirichlet(np.ones(40)),
    }[case]
    samples = 2 * CHUNK + 1234  # crosses chunk boundaries of the draw counts
    expected_choice, expected_number = _megatron_blend(weights, samples)
    index = BlendIndex.build(weights, samples)
    np.testing.assert_array_equal(index.choices, expected_choice)
    for start, stop in ((0, 100), (CHUNK - 7, CHUNK + 9), (samples - 50, samples)):
        choices, numbers = index.locate(start, stop)
        np.testing.assert_array_equal(choices, expected_choice[start:stop])
        np.testing.assert_array_equal(numbers, expected_number[start:stop])


def test_index_is_cached_on_disk_and_reused(tmp_path, monkeypatch):
    weights = np.array([0.7, 0.2, 0.1])
    first = BlendIndex.cached(weights, 5000, tmp_path)
    assert isinstance(first.choices, np.memmap) and len(list(tmp_path.iterdir())) == 1

    def no_rebuild(*args):
        raise AssertionError("rebuilt a cached index")

    monkeypatch.setattr(BlendIndex, "build", classmethod(no_rebuild))
    again = BlendIndex.cached(weights, 5000, tmp_path)
    np.testing.assert_array_equal(first.choices, again.choices)


def test_drawn_samples_match_resolved_weights_and_come_from_their_prefix(pipeline_shards, tmp_path):
    blend = open_blend(pipeline_shards.pretrain, _tokenizer_sha(pipeline_shards))
    weights = _train_weights(pipeline_shards.pretrain)
    samples = 100_000
    phase = PhaseSamples.open(blend, SEQ, seed=7, phase=0, samples=samples, cache_dir=tmp_path)
    drawn = np.bincount(phase.index.choices, minlength=len(weights)) / samples
    assert np.all(np.abs(drawn - weights) <= 0.01 * weights), (drawn, weights)

    # Each drawn sample is a window of its prefix's epoch stream, rebuilt here from the .bin directly.
    prefixes, numbers = phase.index.locate(0, 300)
    batch = phase.samples(0, 300)
    assert batch.shape == (300, SEQ + 1) and batch.dtype == np.int64
    for row, prefix, number in zip(batch, prefixes, numbers):
        source = phase.prefixes[prefix]
        streams = _epoch_streams(source, epochs=1 + (int(number) + 1) * SEQ // source.tokens_per_epoch + 1)
        block, within = divmod(int(number), source.samples_per_block)
        window = block * source.samples_per_block + int(source._block_order(block)[within])
        np.testing.assert_array_equal(row, streams[window * SEQ : window * SEQ + SEQ + 1])


def _epoch_streams(source: PrefixSamples, epochs: int) -> np.ndarray:
    reader = IndexedReader(source.prefix)
    return np.concatenate(
        [reader.sequence(int(document)) for epoch in range(epochs) for document in source.document_order(epoch)]
    ).astype(np.int64)


def test_prefix_stream_shuffles_documents_per_epoch_and_keeps_eod(pipeline_shards):
    eod = TokenizerCard.read(pipeline_shards.tokenizer).special_ids["</s>"]
    prefix = pipeline_shards.tokenized / "shards" / "english.en.debian_docs"
    reader = IndexedReader(prefix)
    assert isinstance(reader.tokens, np.memmap)
    source = PrefixSamples(prefix, SEQ, seed=(1, 0, 0))
    orders = [source.document_order(epoch) for epoch in range(3)]
    for order in orders:
        assert sorted(order) == list(range(reader.num_documents))
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    assert not np.array_equal(orders[0], PrefixSamples(prefix, SEQ, seed=(2, 0, 0)).document_order(0))

    total = source.tokens_per_epoch
    streams = _epoch_streams(source, epochs=2)
    np.testing.assert_array_equal(source.stream(total - 50, 100), streams[total - 50 : total + 50])  # into epoch 1
    assert np.count_nonzero(streams[:total] == eod) == reader.num_documents  # every document ends with EOD
    samples = np.stack([source.sample(k) for k in range(source.samples_per_block)])
    assert np.count_nonzero(samples == eod) >= reader.num_documents - 1  # across boundaries, EODs kept
    windows = source._block_order(0)
    assert sorted(windows) == list(range(source.samples_per_block))  # one block: each window of the epoch once
    for number in (0, 1, len(samples) - 1):
        start = int(windows[number]) * SEQ
        np.testing.assert_array_equal(samples[number], streams[start : start + SEQ + 1])
    assert not np.array_equal(windows, np.arange(len(windows)))  # in shuffled order


def test_a_prefix_smaller_than_a_sample_wraps_into_its_next_epochs(pipeline_shards):
    prefix = pipeline_shards.tokenized / "shards" / "english.en.bad_records"
    source = PrefixSamples(prefix, 4 * IndexedReader(prefix).num_tokens, seed=(0, 0, 0))
    assert source.samples_per_block == 1
    np.testing.assert_array_equal(source.sample(0), _epoch_streams(source, epochs=5)[: source.seq_length + 1])


def _tokenizer_sha(shards) -> str:
    return TokenizerCard.read(shards.tokenizer).model_sha256


def test_shards_of_another_tokenizer_are_refused(pipeline_shards, tmp_path, capsys):
    for name in ("tokenized", "pretrain"):
        shutil.copytree(pipeline_shards.root / name, tmp_path / name)
    manifest_path = tmp_path / "tokenized" / "tokenized.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["prefixes"][0]["tokenizer_sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(TokenizerMismatch) as raised:
        open_blend(tmp_path / "pretrain", _tokenizer_sha(pipeline_shards))
    message = str(raised.value)
    assert "\n" not in message and manifest["prefixes"][0]["prefix"] in message and "000000000000" in message
    open_blend(pipeline_shards.pretrain, _tokenizer_sha(pipeline_shards))  # the untouched original is fine

    capsys.readouterr()
    assert main(["train", "--blend", str(tmp_path / "pretrain"), "--out", str(tmp_path / "run")]) == 2
    printed = capsys.readouterr().err.strip()
    assert printed.startswith("corpusmill: error: ") and "000000000000" in printed and len(printed.splitlines()) == 1
    assert not (tmp_path / "run").exists()  # refused before anything was written
