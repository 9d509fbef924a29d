"""`corpusmill tokenizer train SAMPLE --out DIR`: a byte-fallback SentencePiece BPE model and its card.

``DIR`` receives ``tokenizer.model``, ``tokenizer.vocab`` (one ``piece<TAB>score`` line per
id; pieces JSON-escaped, so newline and tab pieces stay on one line) and ``card.json``
(settings, SentencePiece options, the sample's composition, sha256 of the model, wall time
and peak memory; the format is :mod:`corpusmill.tokenizer.card`'s).

One phase of one unit, run by the executor it is handed: the unit trains in a child process
(see :mod:`corpusmill.tokenizer.training`) and writes the model and the vocabulary. The card
is the run's marker, published last: its presence means the model is complete, a re-run
with the same settings and sample does nothing, and one with other settings is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import psutil

from corpusmill.curation.atomic import atomic_path, read_json
from corpusmill.curation.command import StageCommand
from corpusmill.curation.dataset import Dataset
from corpusmill.curation.executor import Executor
from corpusmill.curation.options import option
from corpusmill.curation.stage import StageRun, json_config
from corpusmill.tokenizer.card import CARD_FILE, STAGE, TokenizerCard
from corpusmill.tokenizer.codec import MODEL_FILE
from corpusmill.tokenizer.composition import COMPOSITION_FILE
from corpusmill.tokenizer.training import TrainSettings, check_fits, sentencepiece_options, train

VOCAB_FILE = "tokenizer.vocab"
TRAIN_UNIT = "model"


@dataclass(frozen=True, kw_only=True)
class TrainOptions(TrainSettings):
    """`corpusmill tokenizer train SAMPLE --out DIR [--vocab-size N] [--max-sentences N] ...`."""

    input: str = option(
        positional=True, metavar="sample", help="output of `corpusmill tokenizer sample` (or any document dataset)"
    )
    out: str = option(help="directory for tokenizer.model, tokenizer.vocab and card.json")
    memory_limit_gb: float | None = option(
        None, help="refuse when the estimated peak exceeds this (default: memory available now)"
    )

    @property
    def settings(self) -> TrainSettings:
        """The options that decide the model, without where it is read from and written to."""
        return TrainSettings(**{field.name: getattr(self, field.name) for field in fields(TrainSettings)})

    @property
    def memory_limit(self) -> int | None:
        return None if self.memory_limit_gb is None else int(self.memory_limit_gb * 2**30)


def sample_description(sample_root: Path) -> dict[str, Any]:
    """What the model was trained on: path, fingerprint, size (copies counted) and composition."""
    dataset = Dataset.open(sample_root)
    composition_path = sample_root / COMPOSITION_FILE
    composition = read_json(composition_path) if composition_path.exists() else None
    nbytes = composition["total"]["bytes_after"] if composition else sum(s.text_bytes for s in dataset.shards)
    return {
        "path": str(sample_root),
        "fingerprint": dataset.fingerprint(),
        "documents": dataset.num_rows,
        "bytes": nbytes,
        "composition": composition,
    }


def vocab_lines(model_proto: bytes) -> list[str]:
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_proto=model_proto)
    return [
        f"{json.dumps(processor.id_to_piece(i), ensure_ascii=False)[1:-1]}\t{processor.get_score(i):g}"
        for i in range(processor.get_piece_size())
    ]


@dataclass(frozen=True)
class _TrainUnit:
    """Trains the model (in a child process) and writes it and its vocabulary into the output."""

    sample_root: str
    settings: TrainSettings

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        result = train(self.sample_root, self.settings, run.work_dir("train"))
        with atomic_path(run.out / MODEL_FILE) as tmp:
            tmp.write_bytes(result.model_proto)
        with atomic_path(run.out / VOCAB_FILE) as tmp:
            tmp.write_text("\n".join(vocab_lines(result.model_proto)) + "\n", encoding="utf-8")
        return {
            "unit_id": unit["unit_id"],
            "model_sha256": hashlib.sha256(result.model_proto).hexdigest(),
            "sentences_seen": result.sentences_seen,
            "wall_seconds": result.wall_seconds,
            "peak_rss_bytes": result.peak_rss_bytes,
        }


def train_tokenizer(options: TrainOptions, *, executor: Executor, overwrite: bool = False) -> TokenizerCard:
    """Train on ``options.input`` into ``options.out``; return the card (resumes an interrupted run)."""
    settings = options.settings
    sample = sample_description(Path(options.input))
    config = {"settings": settings.fingerprint(), "sample": sample["fingerprint"]}
    run = StageRun(Path(options.out), STAGE, config, marker=CARD_FILE, inputs=(str(options.input),))
    if overwrite or run.completed() is None:
        # Refused before the directory is claimed; a finished model is reused on any machine.
        estimate = check_fits(sample["bytes"], settings, options.memory_limit)
    if (finished := run.claim(executor, overwrite)) is not None:
        return TokenizerCard.from_dict(finished, str(run.out / CARD_FILE))
    executor.progress.note(
        f"[tokenizer train] vocab {settings.vocab_size:,} on {sample['bytes'] / 1e6:,.1f} MB "
        f"({sample['documents']:,} documents), estimated peak {estimate / 2**30:.1f} GiB"
    )
    (trained,) = run.run_phase("train", [{"unit_id": TRAIN_UNIT}], _TrainUnit(options.input, settings), executor)
    card = TokenizerCard.from_dict(
        json_config(
            {
                "stage": STAGE,
                "config": config,
                "fingerprint": config,
                "settings": settings.record(),
                "sentencepiece_options": sentencepiece_options(settings),
                "special_ids": {
                    "<unk>": settings.unk_id,
                    "<s>": settings.bos_id,
                    "</s>": settings.eos_id,
                    "<pad>": settings.pad_id,
                },
                "sample": sample,
                "model_sha256": trained["model_sha256"],
                "sentences_seen": trained["sentences_seen"],
                "sentences_loaded": min(trained["sentences_seen"], settings.max_sentences),
                "wall_seconds": round(trained["wall_seconds"], 2),
                "peak_rss_bytes": trained["peak_rss_bytes"],
                "estimated_peak_bytes": estimate,
                "machine": {
                    "cpus": os.cpu_count(),
                    "memory_bytes": psutil.virtual_memory().total,
                    "platform": platform.platform(),
                },
            }
        ),
        "the card being written",
    )
    run.publish(card.to_dict())
    executor.progress.note(
        f"[tokenizer train] {settings.vocab_size:,} pieces in {trained['wall_seconds']:,.1f} s, "
        f"peak memory {trained['peak_rss_bytes'] / 2**30:.2f} GiB -> {run.out / MODEL_FILE}"
    )
    return card


COMMANDS = [
    StageCommand(
        ("tokenizer", "train"),
        "train a byte-fallback SentencePiece BPE tokenizer on a sample",
        TrainOptions,
        train_tokenizer,
    )
]
