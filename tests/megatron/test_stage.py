"""`corpusmill tokenize` end to end: every document read back by megatron-core equals a direct
sentencepiece encode, accounting holds, and interrupted runs resume to identical bytes."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import sentencepiece

from corpusmill.curation.atomic import read_json
from corpusmill.curation.dataset import Dataset
from corpusmill.curation.errors import ConfigError
from corpusmill.curation.executor import SerialExecutor
from corpusmill.curation.progress import RecordingProgress
from corpusmill.curation.megatron.components import holdout_splits
from corpusmill.curation.megatron.encoder import file_sha256
from corpusmill.curation.megatron.indexed import bin_path, idx_path
from corpusmill.curation.megatron.manifest import TOKENIZED_FILE, TokenizedManifest, read_tokenized_manifest
from corpusmill.curation.megatron.stage import TokenizeOptions, tokenize_dataset
from corpusmill.curation.stage import PROGRESS_DIR, StageConfigMismatch

indexed_dataset = pytest.importorskip("megatron.core.datasets.indexed_dataset")

ALL_KEYS = ("category", "language", "source", "quality_bucket")


def tokenize(
    dataset: Path, out: Path, model: Path, executor: Any = None, overwrite: bool = False, **options: Any
) -> TokenizedManifest:
    """``tokenize_dataset`` in this process (a SerialExecutor unless another executor is given)."""
    return tokenize_dataset(
        TokenizeOptions(input=str(dataset), out=str(out), tokenizer=str(model), **options),
        executor=executor or SerialExecutor(),
        overwrite=overwrite,
    )


def expected_documents(
    dataset: Path, model: Path, keys: tuple[str, ...], valid_fraction: float = 0.0, bos: bool = False
) -> dict[tuple[str, ...], list[list[int]]]:
    """Component -> its documents' tokens, in input order, encoded one by one with sentencepiece."""
    processor = sentencepiece.SentencePieceProcessor(model_file=str(model))
    expected: dict[tuple[str, ...], list[list[int]]] = {}
    for shard in sorted(dataset.glob("*.parquet")):
        for row in pq.read_table(shard).to_pylist():
            if row["text"] is None or not row["text"].strip():
                continue
            pieces = processor.encode(row["text"])
            if not pieces:
                continue
            values = {**row, "language": row["code_lang"] if row["category"] == "code" else row["lang"]}
            split = holdout_splits([row["id"]], valid_fraction, 0.0)[0]
            component = (*(values[key] for key in keys), split)
            expected.setdefault(component, []).append([processor.bos_id()] * bos + pieces + [processor.eos_id()])
    return expected


def read_back(out: Path) -> dict[tuple[str, ...], list[list[int]]]:
    """Every prefix of a tokenize output, read by megatron-core's IndexedDataset."""
    manifest = read_tokenized_manifest(out)
    found = {}
    for prefix in manifest.prefixes:
        dataset = indexed_dataset.IndexedDataset(str(out / prefix.prefix))
        documents = [dataset[i].tolist() for i in range(len(dataset))]
        assert (len(documents), sum(map(len, documents))) == (prefix.documents, prefix.tokens)
        assert len(dataset.document_indices) == prefix.documents + 1
        found[tuple(prefix.keys[key] for key in manifest.split_by)] = documents
    return found


def output_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "shards").iterdir())}


def test_cli_on_ray_writes_what_megatron_reads_and_sentencepiece_encodes(
    ray_session: None,
    make_dataset: Callable[..., Path],
    tokenizer_model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from corpusmill.pipelines.cli import main

    dataset = make_dataset(shards=3)
    out = tmp_path / "tokenized"
    argv = [
        "tokenize",
        str(dataset),
        "--tokenizer",
        str(tokenizer_model.parent),
        "--out",
        str(out),
        "--valid-fraction",
        "0.1",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "shards/english.en.debian_docs" in printed and "tokenize: 65 docs" in printed
    assert read_back(out) == expected_documents(dataset, tokenizer_model, ("category", "language", "source"), 0.1)
    manifest = read_tokenized_manifest(out)
    assert manifest.tokenizer["sha256"] == file_sha256(tokenizer_model)
    assert {p.tokenizer_sha256 for p in manifest.prefixes} == {file_sha256(tokenizer_model)}
    assert any(p.keys["split"] == "valid" for p in manifest.prefixes)
    for prefix in manifest.prefixes:
        assert bin_path(out / prefix.prefix).stat().st_size == prefix.bin_bytes == prefix.tokens * 2
    stats = read_json(out / "stats.json")
    rejected = {reason: tally["docs"] for reason, tally in stats["rejected"].items()}
    assert rejected == {"missing_text": 1, "empty_text": 1, "no_tokens": 1}
    assert stats["in"]["docs"] == stats["out"]["docs"] + 3 == 65
    assert stats["out"]["bytes"] == sum(p.text_bytes for p in manifest.prefixes)
    assert stats["counters"]["tokens"] == manifest.tokens
    rejects = Dataset.open(out / "rejects").read_table().to_pylist()
    assert sorted((r["id"], r["reason"]) for r in rejects) == [
        ("blank", "empty_text"), ("null-text", "missing_text"), ("zero-width", "no_tokens")
    ]  # fmt: skip
    assert not (out / "_work").exists()
    assert main(argv) == 0
    assert "already complete" in capsys.readouterr().err


def test_big_vocabularies_get_int32_tokens(
    make_dataset: Callable[..., Path], big_tokenizer_model: Path, tmp_path: Path
) -> None:
    dataset = make_dataset(shards=1, with_bad_rows=False)
    manifest = tokenize(dataset, tmp_path / "out", big_tokenizer_model)
    assert manifest.tokenizer["dtype"] == "int32" and manifest.tokenizer["vocab_size"] == 70_000
    found = read_back(tmp_path / "out")
    assert found == expected_documents(dataset, big_tokenizer_model, ("category", "language", "source"))
    assert max(token for documents in found.values() for doc in documents for token in doc) > 65_535


def test_split_by_annotation_columns_with_bos(
    make_dataset: Callable[..., Path], tokenizer_model: Path, tmp_path: Path
) -> None:
    dataset = make_dataset()
    out = tmp_path / "out"
    manifest = tokenize(dataset, out, tokenizer_model, bos=True, split_by=ALL_KEYS, batch_mb=20_000 / 2**20)
    assert manifest.split_by == [*ALL_KEYS, "split"]
    assert {p.keys["quality_bucket"] for p in manifest.prefixes} == {"high", "medium", "low"}
    assert "shards/english.en.debian_docs.high" in [p.prefix for p in manifest.prefixes], "named in --split-by order"
    assert read_back(out) == expected_documents(dataset, tokenizer_model, ALL_KEYS, bos=True)


class CrashAfter(SerialExecutor):
    """Dies in ``phase`` after a unit wrote its files but before its completion record."""

    def __init__(self, run_out: Path, phase: str, units_before_crash: int):
        super().__init__()
        self.run_out, self.phase, self.units_before_crash = run_out, phase, units_before_crash
        self.completed = 0

    def map(
        self, units: Sequence[dict[str, Any]], fn: Callable[..., dict[str, Any]], *, label: str, num_cpus: float = 1.0
    ) -> list[dict[str, Any]]:
        results = []
        for unit in units:
            results.append(fn(unit))
            if label == f"tokenize/{self.phase}":
                self.completed += 1
                if self.completed > self.units_before_crash:
                    (self.run_out / PROGRESS_DIR / self.phase / f"{unit['unit_id']}.json").unlink()
                    raise RuntimeError("injected crash")
        return results


@pytest.mark.parametrize("phase, units_before_crash", [("encode", 1), ("merge", 3)])
def test_resume_after_a_crash_gives_identical_output(
    make_dataset: Callable[..., Path], tokenizer_model: Path, tmp_path: Path, phase: str, units_before_crash: int
) -> None:
    dataset = make_dataset(shards=3)
    clean = tokenize(dataset, tmp_path / "clean", tokenizer_model)
    out = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="injected crash"):
        tokenize(dataset, out, tokenizer_model, executor=CrashAfter(out, phase, units_before_crash))
    assert not (out / TOKENIZED_FILE).exists()
    killed_mid_write = out / "shards" / f"{clean.prefixes[-1].prefix.split('/')[-1]}.bin.tmp-deadbeef0000"
    if phase == "merge":
        killed_mid_write.write_bytes(b"left by a worker killed while writing")
    resumed = tokenize(dataset, out, tokenizer_model)
    assert [p.prefix for p in resumed.prefixes] == [p.prefix for p in clean.prefixes]
    assert output_bytes(out) == output_bytes(tmp_path / "clean")
    assert read_json(out / "stats.json") == read_json(tmp_path / "clean" / "stats.json")
    assert all(".tmp-" not in p.name for p in (out / "shards").iterdir())


def test_other_settings_or_tokenizer_are_refused(
    make_dataset: Callable[..., Path], tokenizer_model: Path, big_tokenizer_model: Path, tmp_path: Path
) -> None:
    dataset = make_dataset(shards=1)
    out = tmp_path / "out"
    tokenize(dataset, out, tokenizer_model)
    before = output_bytes(out)
    with pytest.raises(StageConfigMismatch, match="--overwrite"):
        tokenize(dataset, out, big_tokenizer_model)
    with pytest.raises(StageConfigMismatch):
        tokenize(dataset, out, tokenizer_model, valid_fraction=0.2)
    assert output_bytes(out) == before
    redone = tokenize(dataset, out, big_tokenizer_model, overwrite=True)
    assert redone.tokenizer["sha256"] == file_sha256(big_tokenizer_model)
    assert all(idx_path(out / p.prefix).read_bytes()[17] == 4 for p in redone.prefixes), "int32 dtype code"
    manifest = json.loads((out / TOKENIZED_FILE).read_text())
    assert manifest["format"] == "megatron-indexed" and "model_path" not in manifest["config"]["tokenizer"]
    assert np.isclose(sum(p["tokens"] for p in manifest["prefixes"]), redone.tokens)


def test_a_finished_run_is_reused_and_impossible_options_are_refused(
    make_dataset: Callable[..., Path], tokenizer_model: Path, tmp_path: Path
) -> None:
    dataset, out = make_dataset(shards=1), tmp_path / "out"
    first = tokenize(dataset, out, tokenizer_model)
    progress = RecordingProgress()
    again = tokenize(dataset, out, tokenizer_model, executor=SerialExecutor(progress))
    assert again.to_dict() == first.to_dict() == read_tokenized_manifest(out).to_dict()
    assert any("already complete" in note for note in progress.notes)
    with pytest.raises(ConfigError, match="--valid-fraction 0.6 and --test-fraction 0.4"):
        TokenizeOptions(input="in", out="out", tokenizer="m", valid_fraction=0.6, test_fraction=0.4)
    with pytest.raises(ConfigError, match="--split-by source,source: give one or more distinct keys"):
        TokenizeOptions(input="in", out="out", tokenizer="m", split_by=("source", "source"))
