"""`corpusmill tokenizer eval MODEL [MODEL2] IN --out DIR`: tokenizer quality on a dataset.

One phase, one unit per input shard, run by the executor it is handed: each unit measures
every model on its shard. The driver merges the sums into ``DIR/report.json``, the run's
marker (so an identical re-run does nothing); the CLI shows the fertility table (side by
side for two models).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from corpusmill.curation.command import StageCommand
from corpusmill.curation.dataset import Dataset
from corpusmill.curation.documents import check_document_columns, split_invalid_documents
from corpusmill.curation.errors import ConfigError
from corpusmill.curation.executor import Executor
from corpusmill.curation.options import option
from corpusmill.curation.stage import StageRun, json_config, shard_units
from corpusmill.tokenizer.codec import Codec, model_path
from corpusmill.tokenizer.evaluation import GroupMetrics, ModelMetrics, format_side_by_side, measure_batch, model_report
from corpusmill.tokenizer.sampling import require_classified

STAGE = "tokenizer_eval"
REPORT_FILE = "report.json"


@dataclass(frozen=True, kw_only=True)
class EvalOptions:
    """`corpusmill tokenizer eval MODEL [MODEL2] IN --out DIR`."""

    inputs: tuple[str, ...] = option(
        positional=True,
        metavar="MODEL... IN",
        help="one or two models (tokenizer.model or a `tokenizer train` output), then a classified dataset",
    )
    out: str = option(help=f"directory for the report ({REPORT_FILE})")

    def __post_init__(self) -> None:
        if not 2 <= len(self.inputs) <= 3:
            raise ConfigError("give one or two models and then the dataset: tokenizer eval MODEL [MODEL2] IN --out DIR")

    @property
    def models(self) -> tuple[str, ...]:
        return self.inputs[:-1]

    @property
    def dataset(self) -> str:
        return self.inputs[-1]


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

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        dataset = self.dataset
        shard = dataset.shards[unit["index"]]
        codecs = [Codec(path) for path in self.models]
        totals = [ModelMetrics() for _ in codecs]
        for batch, rows in dataset.iter_numbered_batches(shard, batch_rows=1024):
            valid, _ = split_invalid_documents(batch, STAGE, shard.name, rows)
            for codec, total in zip(codecs, totals):
                total.add(measure_batch(codec, valid))
        for codec, total in zip(codecs, totals):
            if total.used_ids is None:
                total.used_ids = np.zeros(codec.vocab_size, dtype=bool)
        return {"unit_id": unit["unit_id"], "models": [_encode_metrics(total) for total in totals]}


def model_labels(models: list[str] | tuple[str, ...]) -> list[str]:
    """Short names for the table: the model directory's (or file's) name, made unique."""
    labels = []
    for number, model in enumerate(models):
        path = Path(model)
        label = path.name if path.is_dir() else path.stem
        labels.append(label if label not in labels else f"{label}#{number + 1}")
    return labels


def _file_sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def evaluate(options: EvalOptions, *, executor: Executor, overwrite: bool = False) -> dict[str, Any]:
    """Measure each model on every valid document of the dataset; write and return the report."""
    resolved = [str(model_path(m)) for m in options.models]
    for path in resolved:
        Codec(path)  # fail here, with the fix, rather than in a worker
    dataset = Dataset.open(options.dataset)
    check_document_columns(dataset)
    for shard in dataset.shards:
        require_classified(pq.read_schema(dataset.shard_path(shard)), f"{options.dataset}/{shard.name}")
    config = {
        "models": resolved,
        "model_sha256": [_file_sha256(path) for path in resolved],
        "input": str(options.dataset),
        "input_fingerprint": dataset.fingerprint(),
    }
    run = StageRun(Path(options.out), STAGE, config, marker=REPORT_FILE, inputs=(*resolved, str(options.dataset)))
    if (finished := run.claim(executor, overwrite)) is not None:
        return finished
    results = run.run_phase("measure", shard_units(dataset), _MeasureShard(dataset, tuple(resolved)), executor)
    reports = {}
    for index, label in enumerate(model_labels(options.models)):
        merged = ModelMetrics()
        for result in results:
            merged.add(_decode_metrics(result["models"][index]))
        reports[label] = {"model": resolved[index], **model_report(merged, Codec(resolved[index]).vocab_size)}
    report = {
        "stage": STAGE,
        "config": json_config(config),
        "input": str(options.dataset),
        "input_fingerprint": config["input_fingerprint"],
        "models": reports,
    }
    run.publish(report)
    executor.progress.note(f"[tokenizer eval] report: {run.out / REPORT_FILE}")
    return report


def render_report(report: dict[str, Any]) -> str:
    """The fertility table: one column pair per model."""
    return format_side_by_side(report["models"])


COMMANDS = [
    StageCommand(
        ("tokenizer", "eval"),
        "bytes/token, tokens/word, byte fallback and round trip per language",
        EvalOptions,
        evaluate,
        render_report,
    )
]
