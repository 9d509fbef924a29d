"""`tokenizer eval`: the metrics against direct computation, two models side by side, and the CLI end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from corpusmill.curation.atomic import read_json
from corpusmill.curation.dataset import Dataset
from corpusmill.curation.errors import ConfigError
from corpusmill.curation.executor import SerialExecutor
from corpusmill.curation.progress import RecordingProgress
from corpusmill.tokenizer.card import TokenizerCard
from corpusmill.tokenizer.codec import Codec
from corpusmill.tokenizer.eval_stage import REPORT_FILE, EvalOptions, evaluate, render_report
from corpusmill.tokenizer.evaluation import format_side_by_side, measure_batch
from corpusmill.tokenizer.train_stage import TrainOptions, train_tokenizer

from .conftest import TINY_VOCAB


@pytest.fixture(scope="module")
def smaller_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    sample = TokenizerCard.read(tiny_model).sample["path"]
    out = tmp_path_factory.mktemp("smaller") / "model"
    options = TrainOptions(input=sample, out=str(out), vocab_size=700, character_coverage=0.995, num_threads=2)
    train_tokenizer(options, executor=SerialExecutor())
    return out


def test_batch_metrics_equal_direct_computation(tiny_model, classified_dataset):
    codec = Codec(tiny_model)
    table = Dataset.open(classified_dataset).read_table().slice(0, 60)
    extra = pa.table(
        {
            "id": ["emoji"],
            "text": ["Grüße 😀 \u2581 漢字\r\n"],
            "source": ["t"],
            "category": ["multilingual"],
            "lang": ["de"],
            "code_lang": pa.array([None], pa.string()),
        }
    )
    table = pa.concat_tables([table.select(extra.column_names).cast(extra.schema), extra])
    metrics = measure_batch(codec, table)
    encoded = [codec.encode(text) for text in table["text"].to_pylist()]
    groups = [*metrics.languages.values(), *metrics.code_languages.values()]
    assert sum(g.tokens for g in groups) == sum(map(len, encoded))
    assert sum(g.bytes for g in groups) == sum(len(t.encode()) for t in table["text"].to_pylist())
    assert sum(g.words for g in groups) == sum(len(t.split()) for t in table["text"].to_pylist())
    byte_tokens = sum(codec.processor.is_byte(i) for ids in encoded for i in ids)
    assert byte_tokens > 0 and sum(g.byte_fallback_tokens for g in groups) == byte_tokens
    assert metrics.used_ids is not None and set(np.flatnonzero(metrics.used_ids)) == {i for ids in encoded for i in ids}
    assert all(g.roundtrip_failures == 0 for g in groups)


def test_two_models_side_by_side(tiny_model, smaller_model, classified_dataset, tmp_path):
    inputs = (str(tiny_model), str(smaller_model), str(classified_dataset))
    options = EvalOptions(inputs=inputs, out=str(tmp_path / "r"))
    report = evaluate(options, executor=SerialExecutor())
    assert read_json(tmp_path / "r" / REPORT_FILE) == report
    big, small = report["models"]["model"], report["models"]["model#2"]
    assert big["vocab_size"] == TINY_VOCAB and small["vocab_size"] == 700
    for model in (big, small):
        total = model["total"]
        assert total["docs"] == Dataset.open(classified_dataset).num_rows
        assert total["roundtrip_failures"] == 0
        assert 0 < model["vocab_used_share"] <= 1
        groups = [*model["languages"].values(), *model["code_languages"].values()]
        assert sum(g["bytes"] for g in groups) == total["bytes"]
        assert total["bytes_per_token"] == pytest.approx(total["bytes"] / total["tokens"])
    assert set(big["languages"]) >= {"en", "de", "ja"} and set(big["code_languages"]) >= {"Python", "C"}
    assert big["total"]["bytes_per_token"] > small["total"]["bytes_per_token"]  # more pieces, fewer tokens
    table = format_side_by_side(report["models"])
    assert "tok/word model#2" in table and "lang ja" in table and "code Python" in table
    assert render_report(report) == table

    progress = RecordingProgress()
    assert evaluate(options, executor=SerialExecutor(progress)) == report
    assert any("already complete" in note for note in progress.notes)
    with pytest.raises(ConfigError, match="one or two models"):
        EvalOptions(inputs=(str(classified_dataset),), out=str(tmp_path / "r"))


def test_cli_sample_train_eval_end_to_end(ray_session, classified_dataset, tmp_path, capsys):
    from corpusmill.pipelines.cli import main

    sample_dir, model_dir, report_dir = tmp_path / "sample", tmp_path / "model", tmp_path / "eval"
    argv = [
        "tokenizer",
        "sample",
        str(classified_dataset),
        "--out",
        str(sample_dir),
        "--temperature",
        "3",
        "--upsample",
        "code=0.5",
        "--max-bytes",
        "4e5",
    ]
    assert main(argv) == 0
    assert (
        main(
            [
                "tokenizer",
                "train",
                str(sample_dir),
                "--out",
                str(model_dir),
                "--vocab-size",
                "700",
                "--character-coverage",
                "0.995",
                "--user-symbol",
                "<mask>",
                "--threads",
                "2",
            ]
        )
        == 0
    )
    assert main(["tokenizer", "eval", str(model_dir), str(classified_dataset), "--out", str(report_dir)]) == 0
    output = capsys.readouterr().out
    assert "not_sampled" in output and "B/tok model" in output and "round-trip failures 0" in output
    assert read_json(report_dir / REPORT_FILE)["models"]["model"]["vocab_size"] == 700
    assert TokenizerCard.read(model_dir).vocab_size == 700
    assert (
        main(
            [
                "tokenizer",
                "train",
                str(sample_dir),
                "--out",
                str(tmp_path / "x"),
                "--vocab-size",
                "700",
                "--memory-limit-gb",
                "0.1",
            ]
        )
        == 2
    )
    assert "GiB is available" in capsys.readouterr().err


DEMO_STEPS = """
steps:
  - stage: tokenizer sample
    inputs: ["{out}/classified"]
    out: "{out}/tokenizer_sample"
    upsample: ["multilingual=3", "code=0.5"]
    max_bytes: 20e6
  - stage: tokenizer train
    input: "{out}/tokenizer_sample"
    out: "{out}/tokenizer"
    vocab_size: 1000
  - stage: tokenizer eval
    inputs: ["{out}/tokenizer", "{out}/classified"]
    out: "{out}/tokenizer_eval"
"""


def test_demo_pipeline_steps_run_as_documented(ray_session, classified_dataset, tmp_path, capsys):
    """The steps docs/bench_tokenizer.md proposes for the demo recipe (vocabulary scaled to this corpus)."""
    import shutil

    from corpusmill.pipelines.execution import RayExecutor
    from corpusmill.pipelines.runner import run_pipeline

    shutil.copytree(classified_dataset, tmp_path / "classified")
    pipeline = tmp_path / "demo.yaml"
    pipeline.write_text(DEMO_STEPS)
    run_pipeline(pipeline, str(tmp_path), RayExecutor())
    output = capsys.readouterr().out
    assert "tok/word tokenizer" in output and "lang ja" in output
    composition = read_json(tmp_path / "tokenizer_sample" / "composition.json")
    assert composition["plan"]["multipliers"] == {"multilingual": 3.0, "code": 0.5}
