"""`corpusmill tokenizer eval MODEL [MODEL2] IN --out report.json`: tokenizer quality on a dataset.

One Ray unit per input shard measures every model on that shard; the driver merges the
sums, writes the JSON report and prints the fertility table (side by side for two models).
"""

from __future__ import annotations

import argparse
import base64
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from corpusmill.curation.atomic import write_json_atomic
from corpusmill.curation.dataset import Dataset
from corpusmill.curation.shard_map import dataset_fingerprint, split_invalid_documents
from corpusmill.curation.stage import Executor
from corpusmill.tokenizer.codec import Codec, ModelError, model_path
from corpusmill.tokenizer.evaluation import GroupMetrics, ModelMetrics, format_side_by_side, measure_batch, model_report
from corpusmill.tokenizer.sampling import SamplingError, require_classified

STAGE = "tokenizer_eval"


def _encode_metrics(metrics: ModelMetrics) -> dict[str, Any]:
    assert metrics.used_ids is not None
    return {
        "languages": {k: asdict(v) for k, v in metrics.languages.items()},
        "code_languages": {k: asdict(v) for k, v in metrics.code_languages.items()},
        "used_ids": base64.b64encode(np.packbits(metrics.used_ids).tobytes()).decode(),
        "vocab_size": len(metrics.used_ids),
    }


def _decode_metrics(data: dict[str, Any]) -> ModelMetrics:
    bits = np.frombuffer(base64.b64decode(data["used_ids"]), dtype=np.uint8)
    return ModelMetrics(
        languages={k: GroupMetrics(**v) for k, v in data["languages"].items()},
        code_languages={k: GroupMetrics(**v) for k, v in data["code_languages"].items()},
        used_ids=np.unpackbits(bits)[: data["vocab_size"]].astype(bool),
    )


@dataclass(frozen=True)
class _MeasureShard:
    dataset: Dataset
    models: tuple[str, ...]

    def __call__(self, unit: dict[str, Any]) -> dict[str, Any]:
        dataset = self.dataset
        shard = dataset.shards[unit["index"]]
        codecs = [Codec(path) for path in self.models]
        totals = [ModelMetrics() for _ in codecs]
        offset = 0
        for batch in dataset.iter_batches(shard, batch_rows=1024):
            rows = np.arange(offset, offset + batch.num_rows)
            offset += batch.num_rows
            valid, _ = split_invalid_documents(batch, STAGE, shard.name, rows)
            for codec, total in zip(codecs, totals):
                total.add(measure_batch(codec, valid))
        for codec, total in zip(codecs, totals):
            if total.used_ids is None:
                total.used_ids = np.zeros(codec.vocab_size, dtype=bool)
        return {"models": [_encode_metrics(total) for total in totals]}


def model_labels(models: list[str]) -> list[str]:
    """Short names for the table: the model directory's (or file's) name, made unique."""
    labels = []
    for number, model in enumerate(models):
        path = Path(model)
        label = path.name if path.is_dir() else path.stem
        labels.append(label if label not in labels else f"{label}#{number + 1}")
    return labels


def evaluate(models: list[str], input_dir: str, out: str | Path, *, executor: Executor | None = None) -> dict[str, Any]:
    """Measure each model on every valid document of ``input_dir``; write and return the report."""
    resolved = [str(model_path(m)) for m in models]
    for path in resolved:
        Codec(path)  # fail here, with the fix, rather than in a worker
    dataset = Dataset.open(input_dir)
    for shard in dataset.shards:
        require_classified(pq.read_schema(dataset.shard_path(shard)), f"{input_dir}/{shard.name}")
    if executor is None:
        from corpusmill.pipelines.execution import run_tasks as executor
    units = [{"unit_id": f"s{i:05d}", "index": i, "shard": shard.name} for i, shard in enumerate(dataset.shards)]
    results = executor(units, _MeasureShard(dataset, tuple(resolved)), label=STAGE)
    reports = {}
    for index, label in enumerate(model_labels(models)):
        merged = ModelMetrics()
        for result in results:
            merged.add(_decode_metrics(result["models"][index]))
        reports[label] = {"model": resolved[index], **model_report(merged, Codec(resolved[index]).vocab_size)}
    report = {"input": str(input_dir), "input_fingerprint": dataset_fingerprint(dataset), "models": reports}
    write_json_atomic(Path(out), report)
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="MODEL... IN",
        help="one or two models (tokenizer.model or a `tokenizer train` output), then a classified dataset",
    )
    parser.add_argument("--out", required=True, help="the JSON report to write")


def main(args: argparse.Namespace) -> None:
    from corpusmill.pipelines.cli import CliError

    if not 2 <= len(args.paths) <= 3:
        raise CliError(
            "give one or two models and then the dataset: tokenizer eval MODEL [MODEL2] IN --out report.json"
        )
    try:
        report = evaluate(args.paths[:-1], args.paths[-1], args.out)
    except (ModelError, SamplingError) as error:
        raise CliError(str(error)) from error
    print(format_side_by_side(report["models"]))
    print(f"report: {args.out}")
