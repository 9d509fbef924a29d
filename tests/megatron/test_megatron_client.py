"""The real client end to end: corpusmill shards + a resolved blend -> megatron-core's
BlendedMegatronDatasetBuilder / GPTDataset, with the sentencepiece tokenizer megatron loads itself."""

from __future__ import annotations

import itertools
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from corpusmill.curation.executor import SerialExecutor
from corpusmill.curation.megatron.indexed import IndexedReader
from corpusmill.curation.megatron.manifest import read_tokenized_manifest
from corpusmill.curation.megatron.stage import TokenizeOptions, tokenize_dataset

SPEC = Path(__file__).resolve().parents[2] / "blend_specs" / "nemotron4.yaml"
SEQ_LENGTH = 96
SAMPLES = 3000

gpt_dataset = pytest.importorskip("megatron.core.datasets.gpt_dataset")


def tokenize(dataset: Path, out: Path, model: Path, **options: Any) -> None:
    tokenize_dataset(
        TokenizeOptions(input=str(dataset), out=str(out), tokenizer=str(model), **options), executor=SerialExecutor()
    )


def _documents(prefix: str) -> list[tuple[int, ...]]:
    reader = IndexedReader(prefix)
    return [tuple(reader.sequence(i).tolist()) for i in range(len(reader))]


def _assert_made_of_documents(sample: np.ndarray, documents: list[tuple[int, ...]], eod: int) -> None:
    """A sample is the tail of one document, whole documents, then the head of another."""
    ends = np.flatnonzero(sample == eod)
    if len(ends) == 0:
        assert any(_contains(doc, tuple(sample)) for doc in documents)
        return
    head, tail = tuple(sample[: ends[0] + 1]), tuple(sample[ends[-1] + 1 :])
    assert any(doc[len(doc) - len(head) :] == head for doc in documents)
    assert not tail or any(doc[: len(tail)] == tail for doc in documents)
    whole = set(documents)
    for start, end in itertools.pairwise(ends):
        assert tuple(sample[start + 1 : end + 1]) in whole


def _contains(document: tuple[int, ...], window: tuple[int, ...]) -> bool:
    return any(document[i : i + len(window)] == window for i in range(len(document) - len(window) + 1))


def _builder_config(tokenizer: Any, **blend: Any) -> Any:
    return gpt_dataset.GPTDatasetConfig(
        random_seed=1234,
        sequence_length=SEQ_LENGTH,
        tokenizer=tokenizer,
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
        **blend,
    )


def test_resolved_blend_builds_megatrons_gpt_datasets(
    make_dataset: Callable[..., Path], tokenizer_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.utils import get_blend_from_list
    from megatron.core.tokenizers import MegatronTokenizer

    from corpusmill.pipelines.cli import main

    shards = tmp_path / "tokenized"
    tokenize(make_dataset(), shards, tokenizer_model)
    manifest = read_tokenized_manifest(shards)
    out = tmp_path / "blend"
    argv = ["blend", "resolve", str(SPEC), "--shards", str(shards), "--tokens", "300K", "--out", str(out)]
    assert main([*argv, "--tokenizer", str(tokenizer_model), "--seq-length", str(SEQ_LENGTH)]) == 0
    assert "english.en.debian_docs" in capsys.readouterr().out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tokenizer = MegatronTokenizer.from_pretrained(str(tokenizer_model), metadata_path={"library": "sentencepiece"})
    assert (tokenizer.eod, tokenizer.vocab_size) == (manifest.tokenizer["eod_id"], manifest.tokenizer["vocab_size"])

    prefixes, weights = get_blend_from_list((out / "data_path.txt").read_text().split())
    config = _builder_config(tokenizer, blend=(prefixes, weights), split="1,0,0")
    train, _, _ = BlendedMegatronDatasetBuilder(gpt_dataset.GPTDataset, [SAMPLES, 0, 0], lambda: True, config).build()
    drawn = np.bincount(train.dataset_index, minlength=len(prefixes))
    # Megatron may draw a small surplus over SAMPLES (0.16 does): each prefix's share is what is checked.
    assert SAMPLES <= drawn.sum() <= SAMPLES * 1.01
    assert np.all(np.abs(drawn - np.array(weights) * drawn.sum()) <= 1), "Megatron draws each prefix by its weight"
    trainer = json.loads((out / "trainer.json").read_text())
    assert [entry["weight"] for entry in trainer["splits"]["train"]] == pytest.approx(weights)
    documents = {index: _documents(prefix) for index, prefix in enumerate(prefixes)}
    for index in range(0, SAMPLES, 97):
        sample = train[index]
        full = np.append(sample["tokens"].numpy(), sample["labels"].numpy()[-1])
        assert len(full) == SEQ_LENGTH + 1
        _assert_made_of_documents(full, documents[int(train.dataset_index[index])], tokenizer.eod)


def test_held_out_prefixes_feed_megatrons_per_split_blend(
    make_dataset: Callable[..., Path], tokenizer_model: Path, tmp_path: Path
) -> None:
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.utils import get_blend_from_list
    from megatron.core.tokenizers import MegatronTokenizer

    from corpusmill.curation.blend.stage import BlendResolveOptions, resolve_blend

    shards = tmp_path / "tokenized"
    tokenize(make_dataset(with_bad_rows=False), shards, tokenizer_model, valid_fraction=0.2)
    out = tmp_path / "blend"
    spec, shard_dirs = str(SPEC), (str(shards),)
    options = BlendResolveOptions(spec=spec, shards=shard_dirs, tokens=1e5, seq_length=SEQ_LENGTH, out=str(out))
    resolve_blend(options, executor=SerialExecutor())
    per_split = json.loads((out / "per_split.json").read_text())
    blends = [get_blend_from_list(per_split[split]) for split in ("train", "valid", "test")]
    assert blends[2] is None and all(path.endswith(".valid") for path in blends[1][0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tokenizer = MegatronTokenizer.from_pretrained(str(tokenizer_model), metadata_path={"library": "sentencepiece"})
    config = _builder_config(tokenizer, blend_per_split=blends)
    train, valid, test = BlendedMegatronDatasetBuilder(
        gpt_dataset.GPTDataset, [500, 50, None], lambda: True, config
    ).build()
    assert len(train) >= 500 and len(valid) >= 50 and test is None  # megatron adds a small surplus
    held_out = {index: _documents(prefix) for index, prefix in enumerate(blends[1][0])}
    for index in range(0, 50, 7):
        sample = valid[index]
        full = np.append(sample["tokens"].numpy(), sample["labels"].numpy()[-1])
        _assert_made_of_documents(full, held_out[int(valid.dataset_index[index])], tokenizer.eod)
