"""`corpusmill tokenizer train SAMPLE --out DIR`: a byte-fallback SentencePiece BPE model and its card.

``DIR`` receives ``tokenizer.model``, ``tokenizer.vocab`` (one ``piece<TAB>score`` line per
id; pieces JSON-escaped, so newline and tab pieces stay on one line) and ``card.json``
(settings, SentencePiece options, the sample's composition, sha256 of the model, wall time
and peak memory). The card is written last: its presence means the model is complete, and
a re-run with the same settings and sample does nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil

from corpusmill.curation.atomic import atomic_path, read_json, write_json_atomic
from corpusmill.curation.dataset import Dataset
from corpusmill.curation.shard_map import dataset_fingerprint
from corpusmill.tokenizer.codec import MODEL_FILE
from corpusmill.tokenizer.composition import COMPOSITION_FILE
from corpusmill.tokenizer.training import (
    DEFAULT_VOCAB_SIZE,
    LOG_LEVELS,
    TrainingError,
    TrainSettings,
    check_fits,
    sentencepiece_options,
    train,
)

VOCAB_FILE = "tokenizer.vocab"
CARD_FILE = "card.json"
WORK_DIR = "_work"


def sample_description(sample_root: Path) -> dict[str, Any]:
    """What the model was trained on: path, fingerprint, size (copies counted) and composition."""
    dataset = Dataset.open(sample_root)
    composition_path = sample_root / COMPOSITION_FILE
    composition = read_json(composition_path) if composition_path.exists() else None
    nbytes = composition["total"]["bytes_after"] if composition else sum(s.text_bytes for s in dataset.shards)
    return {
        "path": str(sample_root),
        "fingerprint": dataset_fingerprint(dataset),
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


def _already_trained(out: Path, fingerprint: dict[str, Any], overwrite: bool) -> bool:
    """True when ``out`` already holds this exact model; refuse any other non-empty directory."""
    if overwrite and out.exists():
        shutil.rmtree(out)
    card_path = out / CARD_FILE
    if card_path.exists() and read_json(card_path)["fingerprint"] == fingerprint:
        print(f"[tokenizer train] already complete in {out}; nothing to do (pass --overwrite to redo)", file=sys.stderr)
        return True
    if out.exists() and any(p.name != WORK_DIR for p in out.iterdir()):
        raise TrainingError(
            f"{out} holds other files or a model trained otherwise; choose another --out or pass --overwrite"
        )
    return False


def train_tokenizer(
    sample_root: str | Path,
    out: str | Path,
    settings: TrainSettings,
    *,
    overwrite: bool = False,
    memory_limit: int | None = None,
) -> dict[str, Any]:
    """Train on ``sample_root`` into ``out``; return the card."""
    sample_root, out = Path(sample_root), Path(out)
    sample = sample_description(sample_root)
    # Through JSON, so it compares equal to the card's copy (tuples become lists).
    fingerprint = json.loads(json.dumps({"settings": settings.fingerprint(), "sample": sample["fingerprint"]}))
    if _already_trained(out, fingerprint, overwrite):
        return read_json(out / CARD_FILE)
    estimate = check_fits(sample["bytes"], settings, memory_limit)
    print(
        f"[tokenizer train] vocab {settings.vocab_size:,} on {sample['bytes'] / 1e6:,.1f} MB "
        f"({sample['documents']:,} documents), estimated peak {estimate / 2**30:.1f} GiB",
        file=sys.stderr,
    )
    result = train(sample_root, settings, out / WORK_DIR)
    with atomic_path(out / MODEL_FILE) as tmp:
        tmp.write_bytes(result.model_proto)
    with atomic_path(out / VOCAB_FILE) as tmp:
        tmp.write_text("\n".join(vocab_lines(result.model_proto)) + "\n", encoding="utf-8")
    card = {
        "fingerprint": fingerprint,
        "settings": asdict(settings),
        "sentencepiece_options": sentencepiece_options(settings),
        "special_ids": {
            "<unk>": settings.unk_id,
            "<s>": settings.bos_id,
            "</s>": settings.eos_id,
            "<pad>": settings.pad_id,
        },
        "sample": sample,
        "model_sha256": hashlib.sha256(result.model_proto).hexdigest(),
        "sentences_seen": result.sentences_seen,
        "sentences_loaded": min(result.sentences_seen, settings.max_sentences),
        "wall_seconds": round(result.wall_seconds, 2),
        "peak_rss_bytes": result.peak_rss_bytes,
        "estimated_peak_bytes": estimate,
        "machine": {
            "cpus": os.cpu_count(),
            "memory_bytes": psutil.virtual_memory().total,
            "platform": platform.platform(),
        },
    }
    write_json_atomic(out / CARD_FILE, card)
    shutil.rmtree(out / WORK_DIR, ignore_errors=True)
    print(
        f"[tokenizer train] {settings.vocab_size:,} pieces in {result.wall_seconds:,.1f} s, "
        f"peak memory {result.peak_rss_bytes / 2**30:.2f} GiB -> {out / MODEL_FILE}",
        file=sys.stderr,
    )
    return card


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainSettings()
    parser.add_argument("sample", help="output of `corpusmill tokenizer sample` (or any document dataset)")
    parser.add_argument("--out", required=True, help="directory for tokenizer.model, tokenizer.vocab and card.json")
    parser.add_argument(
        "--vocab-size", type=int, default=DEFAULT_VOCAB_SIZE, help="pieces in the vocabulary (default 256000)"
    )
    parser.add_argument(
        "--max-sentences",
        type=int,
        default=defaults.max_sentences,
        help=f"cap on training sentences held in memory; a random subset is kept (default {defaults.max_sentences:,})",
    )
    parser.add_argument(
        "--max-sentence-bytes",
        type=int,
        default=defaults.max_sentence_bytes,
        help="documents are cut into sentences of at most this many bytes at line ends",
    )
    parser.add_argument(
        "--character-coverage",
        type=float,
        default=defaults.character_coverage,
        help="share of characters covered by pieces; the rarest go to byte fallback",
    )
    for name, default in (("unk", 0), ("bos", 1), ("eos", 2), ("pad", 3)):
        parser.add_argument(f"--{name}-id", type=int, default=default, help=f"id of the {name} piece (-1: none)")
    parser.add_argument(
        "--user-symbol",
        action="append",
        default=[],
        dest="user_symbols",
        help="a piece that is never split (e.g. <mask>); repeatable; ids follow the specials",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of SentencePiece's sentence subsampling")
    parser.add_argument("--threads", type=int, default=None, help="training threads (default: all CPUs)")
    parser.add_argument(
        "--memory-limit-gb",
        type=float,
        default=None,
        help="refuse when the estimated peak exceeds this (default: memory available now)",
    )
    parser.add_argument("--log-level", choices=sorted(LOG_LEVELS), default="warning", help="SentencePiece's logging")


def main(args: argparse.Namespace) -> None:
    from corpusmill.pipelines.cli import CliError

    settings = TrainSettings(
        vocab_size=args.vocab_size,
        max_sentences=args.max_sentences,
        max_sentence_bytes=args.max_sentence_bytes,
        character_coverage=args.character_coverage,
        unk_id=args.unk_id,
        bos_id=args.bos_id,
        eos_id=args.eos_id,
        pad_id=args.pad_id,
        user_symbols=tuple(args.user_symbols),
        seed=args.seed,
        num_threads=args.threads or os.cpu_count() or 1,
        log_level=args.log_level,
    )
    memory_limit = None if args.memory_limit_gb is None else int(args.memory_limit_gb * 2**30)
    try:
        train_tokenizer(args.sample, args.out, settings, overwrite=args.overwrite, memory_limit=memory_limit)
    except TrainingError as error:
        raise CliError(str(error)) from error
