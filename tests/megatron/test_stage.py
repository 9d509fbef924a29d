"""`corpusmill tokenize` end to end: every document read back by megatron-core equals a direct
sentencepiece encode, accounting holds, and interrupted runs resume to identical bytes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import sentencepiece

from corpusmill.curation.atomic import read_json
from corpusmill.curation.dataset import Dataset
from corpusmill.curation.stage import PROGRESS_DIR, StageConfigMismatch
from corpusmill.curation.megatron.components import holdout_splits
from corpusmill.curation.megatron.encoder import file_sha256
from corpusmill.curation.megatron.indexed import bin_path, idx_path
from corpusmill.curation.megatron.manifest import read_tokenized_manifest
from corpusmill.curation.megatron.stage import TokenizeOptions, tokenize_dataset

indexed_dataset = pytest.importorskip("megatron.core.datasets.indexed_dataset")

ALL_KEYS = ("category", "language", "source", "quality_bucket")


def run_locally(
    units: list[dict[str, Any]], fn: Callable[[dict[str, Any]], dict[str, Any]], **_: Any
) -> list[dict[str, Any]]:
    return [fn(unit) for unit in units]


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
    manifest = tokenize_dataset(dataset, tmp_path / "out", big_tokenizer_model, executor=run_locally)
    assert manifest.tokenizer["dtype"] == "int32" and manifest.tokenizer["vocab_size"] == 70_000
    found = read_back(tmp_path / "out")
    assert found == expected_documents(dataset, big_tokenizer_model, ("category", "language", "source"))
    assert max(token for documents in found.values() for doc in documents for token in doc) > 65_535


def test_split_by_annotation_columns_with_bos(
    make_dataset: Callable[..., Path], tokenizer_model: Path, tmp_path: Path
) -> None:
    dataset = make_dataset()
    options = TokenizeOptions(split_by=ALL_KEYS, batch_bytes=20_000)
    manifest = tokenize_dataset(
        dataset, tmp_path / "out", tokenizer_model, add_bos=True, options=options, executor=run_locally
    )
    assert manifest.split_by == [*ALL_KEYS, "split"]
    assert {p.keys["quality_bucket"] for p in manifest.prefixes} == {"high", "medium", "low"}
    assert "shards/english.en.debian_docs.high" in [p.prefix for p in manifest.prefixes], "named in --split-by order"
    assert read_back(tmp_path / "out") == expected_documents(dataset, tokenizer_model, ALL_KEYS, bos=True)


def crash_after(run_out: Path, phase: str, units_before_crash: int) -> Callable[..., list[dict[str, Any]]]:
    """An executor that dies in ``phase`` after a unit wrote its files but before its completion record."""
    completed = {"count": 0}

    def execute(units: list[dict[str, Any]], fn: Any, **_: Any) -> list[dict[str, Any]]:
        results = []
        for unit in units:
            results.append(fn(unit))
            if fn.phase == phase:
                completed["count"] += 1
                if completed["count"] > units_before_crash:
                    (run_out / PROGRESS_DIR / phase / f"{unit['unit_id']}.json").unlink()
                    raise RuntimeError("injected crash")
        return results

    return execute


@pytest.mark.parametrize("phase, units_before_crash", [("encode", 1), ("merge", 3)])
def test_resume_after_a_crash_gives_identical_output(
    make_dataset: Callable[..., Path], tokenizer_model: Path, tmp_path: Path, phase: str, units_before_crash: int
) -> None:
    dataset = make_dataset(shards=3)
    clean = tokenize_dataset(dataset, tmp_path / "clean", tokenizer_model, executor=run_locally)
    out = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="injected crash"):
        tokenize_dataset(dataset, out, tokenizer_model, executor=crash_after(out, phase, units_before_crash))
    assert not (out / "manifest.json").exists()
    killed_mid_write = out / "shards" / f"{clean.prefixes[-1].prefix.split('/')[-1]}.bin.tmp-deadbeef0000"
    if phase == "merge":
        killed_mid_write.write_bytes(b"left by a worker killed while writing")
    resumed = tokenize_dataset(dataset, out, tokenizer_model, executor=run_locally)
    assert [p.prefix for p in resumed.prefixes] == [p.prefix for p in clean.prefixes]
    assert output_bytes(out) == output_bytes(tmp_path / "clean")
    assert read_json(out / "stats.json") == read_json(tmp_path / "clean" / "stats.json")
    assert all(".tmp-" not in p.name for p in (out / "shards").iterdir())


def test_other_settings_or_tokenizer_are_refused(
    make_dataset: Callable[..., Path], tokenizer_model: Path, big_tokenizer_model: Path, tmp_path: Path
) -> None:
    dataset = make_dataset(shards=1)
    out = tmp_path / "out"
    tokenize_dataset(dataset, out, tokenizer_model, executor=run_locally)
    before = output_bytes(out)
    with pytest.raises(StageConfigMismatch, match="--overwrite"):
        tokenize_dataset(dataset, out, big_tokenizer_model, executor=run_locally)
    with pytest.raises(StageConfigMismatch):
        tokenize_dataset(
            dataset, out, tokenizer_model, options=TokenizeOptions(valid_fraction=0.2), executor=run_locally
        )
    assert output_bytes(out) == before
    redone = tokenize_dataset(dataset, out, big_tokenizer_model, overwrite=True, executor=run_locally)
    assert redone.tokenizer["sha256"] == file_sha256(big_tokenizer_model)
    assert all(idx_path(out / p.prefix).read_bytes()[17] == 4 for p in redone.prefixes), "int32 dtype code"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "megatron-indexed" and "model_path" not in manifest["config"]["tokenizer"]
    assert np.isclose(sum(p["tokens"] for p in manifest["prefixes"]), redone.tokens)
