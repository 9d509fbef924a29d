"""SentencePiece BPE training with Nemotron-4's settings, in a child process with bounded memory.

Why a child process: SentencePiece holds every loaded sentence in C++ memory; running it in a
fresh process gives an honest peak-memory figure and keeps the caller (a Ray driver, a test
session) out of the way. Memory is bounded by ``max_sentences``: SentencePiece keeps a
uniform random subset of that many sentences (reservoir sampling) however large the sample,
and we refuse before starting when the estimate does not fit the machine.

Documents are cut into training sentences at line ends (a line longer than
``max_sentence_bytes`` is cut at a character boundary), keeping the newlines inside each
sentence, so newline runs and indentation are learned as pieces like any other text.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import psutil

from corpusmill.curation.dataset import Dataset
from corpusmill.curation.errors import CorpusmillError
from corpusmill.curation.options import APPEND, option
from corpusmill.tokenizer.sample_stage import COPIES_COLUMN

DEFAULT_VOCAB_SIZE = 256_000
DEFAULT_MAX_SENTENCES = 20_000_000
LOG_LEVELS = {"info": 0, "warning": 1, "error": 2}
# Peak memory model from this project's runs (docs/bench_tokenizer.md): 7.12 GiB for 845 MB
# and 10.07 GiB for 1,214 MB of sentences, the same for 32k and 256k pieces, i.e. about
# 0.4 GB + 8.6 bytes per loaded byte. The constants below add ~17% headroom.
BASE_MEMORY_BYTES = 512 * 2**20
MEMORY_PER_SENTENCE_BYTE = 10
MIN_SENTENCES = 100


class TrainingError(CorpusmillError, RuntimeError):
    """Training cannot run (or failed) with these settings; the message says the fix."""


def _special_id(name: str, default: int) -> Any:
    return option(default, help=f"id of the {name} piece (-1: none)")


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """Everything that decides the model. Special pieces sit at the ids given (-1 disables one).

    ``required_chars`` and ``max_piece_chars`` are Nemotron-4's fixed choices, not options;
    the card records them with the rest.
    """

    vocab_size: int = option(DEFAULT_VOCAB_SIZE, help="pieces in the vocabulary (default 256000)")
    max_sentences: int = option(
        DEFAULT_MAX_SENTENCES,
        help=f"cap on training sentences held in memory; a random subset is kept (default {DEFAULT_MAX_SENTENCES:,})",
    )
    max_sentence_bytes: int = option(
        4096, help="documents are cut into sentences of at most this many bytes at line ends"
    )
    character_coverage: float = option(
        0.99995, help="share of characters covered by pieces; the rarest go to byte fallback"
    )
    unk_id: int = _special_id("unk", 0)
    bos_id: int = _special_id("bos", 1)
    eos_id: int = _special_id("eos", 2)
    pad_id: int = _special_id("pad", 3)
    user_symbols: tuple[str, ...] = option(
        (),
        flag="--user-symbol",
        cli=APPEND,
        help="a piece that is never split (e.g. <mask>); repeatable; ids follow the specials",
    )
    seed: int = option(0, help="seed of SentencePiece's sentence subsampling")
    num_threads: int | None = option(
        None, flag="--threads", metavar="THREADS", help="training threads (default: all CPUs)"
    )
    log_level: str = option("warning", choices=tuple(sorted(LOG_LEVELS)), help="SentencePiece's logging")

    required_chars: ClassVar[str] = "\n\t"
    max_piece_chars: ClassVar[int] = 16

    def __post_init__(self) -> None:
        if self.num_threads is None:  # every CPU of the machine that plans the run
            object.__setattr__(self, "num_threads", os.cpu_count() or 1)

    @staticmethod
    def from_record(record: dict[str, Any]) -> TrainSettings:
        """The settings a card recorded (see :meth:`record`)."""
        names = {f.name for f in fields(TrainSettings)}
        values = {k: v for k, v in record.items() if k in names}
        return TrainSettings(**{**values, "user_symbols": tuple(values.get("user_symbols", ()))})

    def record(self) -> dict[str, Any]:
        """Every setting, the fixed ones included: the card's ``settings``."""
        values = {f.name: getattr(self, f.name) for f in fields(TrainSettings)}
        return {**values, "required_chars": self.required_chars, "max_piece_chars": self.max_piece_chars}

    def fingerprint(self) -> dict[str, Any]:
        """The settings that change the model (threads and logging do not)."""
        return {k: v for k, v in self.record().items() if k not in ("num_threads", "log_level")}


def sentencepiece_options(settings: TrainSettings) -> dict[str, Any]:
    """Nemotron-4's choices: BPE, byte fallback, split digits, whitespace kept exactly as written."""
    return {
        "model_type": "bpe",
        "vocab_size": settings.vocab_size,
        "byte_fallback": True,
        "split_digits": True,
        "normalization_rule_name": "identity",
        "remove_extra_whitespaces": False,
        "add_dummy_prefix": False,
        "allow_whitespace_only_pieces": True,
        "split_by_whitespace": True,
        "required_chars": settings.required_chars,
        "character_coverage": settings.character_coverage,
        "max_sentencepiece_length": settings.max_piece_chars,
        "max_sentence_length": settings.max_sentence_bytes,
        "input_sentence_size": settings.max_sentences,
        "shuffle_input_sentence": True,
        "unk_id": settings.unk_id,
        "bos_id": settings.bos_id,
        "eos_id": settings.eos_id,
        "pad_id": settings.pad_id,
        "unk_piece": "<unk>",
        "bos_piece": "<s>",
        "eos_piece": "</s>",
        "pad_piece": "<pad>",
        "user_defined_symbols": list(settings.user_symbols),
        "num_threads": settings.num_threads,
        "minloglevel": LOG_LEVELS[settings.log_level],
    }


def chunk_document(text: str, max_bytes: int) -> Iterator[str]:
    """Consecutive pieces of ``text`` of at most ``max_bytes`` UTF-8 bytes, cut after newlines when possible."""
    chunk: list[str] = []
    chunk_bytes = 0
    for line in text.splitlines(keepends=True):
        line_bytes = len(line.encode())
        if chunk and chunk_bytes + line_bytes > max_bytes:
            yield "".join(chunk)
            chunk, chunk_bytes = [], 0
        if line_bytes > max_bytes:
            yield from _cut_long_line(line, max_bytes)
            continue
        chunk.append(line)
        chunk_bytes += line_bytes
    if chunk:
        yield "".join(chunk)


def _cut_long_line(line: str, max_bytes: int) -> Iterator[str]:
    start = 0
    while start < len(line):
        # max_bytes // 4 characters never exceed max_bytes in UTF-8; grow while the bytes fit.
        end = min(len(line), start + max(1, max_bytes // 4))
        while end < len(line) and len(line[start : end + 1].encode()) <= max_bytes:
            end += 1
        yield line[start:end]
        start = end


def sample_sentences(sample_root: str | Path, max_sentence_bytes: int, counter: list[int]) -> Iterator[str]:
    """Training sentences of a sample, each document repeated ``sample_copies`` times (1 if absent)."""
    dataset = Dataset.open(sample_root)
    for shard in dataset.shards:
        for batch in dataset.iter_batches(shard, columns=["text", COPIES_COLUMN], batch_rows=1024):
            copies = batch[COPIES_COLUMN].to_pylist() if COPIES_COLUMN in batch.schema.names else None
            for row, text in enumerate(batch["text"].to_pylist()):
                if not text:
                    continue
                sentences = list(chunk_document(text, max_sentence_bytes))
                for _ in range(copies[row] if copies else 1):
                    counter[0] += len(sentences)
                    yield from sentences


def estimate_peak_bytes(sample_bytes: int, settings: TrainSettings) -> int:
    """Upper estimate of the training process's peak RSS for a sample of ``sample_bytes`` (copies counted)."""
    loaded = min(sample_bytes, settings.max_sentences * settings.max_sentence_bytes)
    return BASE_MEMORY_BYTES + MEMORY_PER_SENTENCE_BYTE * loaded


def check_fits(sample_bytes: int, settings: TrainSettings, memory_limit: int | None = None) -> int:
    """Refuse settings whose estimated peak memory exceeds the limit (default: memory available now)."""
    if settings.max_sentences <= MIN_SENTENCES:
        raise TrainingError(f"--max-sentences must be more than {MIN_SENTENCES} (SentencePiece's minimum)")
    limit = memory_limit if memory_limit is not None else psutil.virtual_memory().available
    estimate = estimate_peak_bytes(sample_bytes, settings)
    if estimate > limit:
        sentences = max(0, limit - BASE_MEMORY_BYTES) // MEMORY_PER_SENTENCE_BYTE // settings.max_sentence_bytes
        cap = (
            f"pass --max-sentences {sentences:,} (or fewer) to load a random subset, "
            if sentences > MIN_SENTENCES
            else ""
        )
        raise TrainingError(
            f"training would need about {estimate / 2**30:.1f} GiB but {limit / 2**30:.1f} GiB is available: "
            f"{cap}draw a smaller sample with `corpusmill tokenizer sample --max-bytes`, or use a larger machine"
        )
    return estimate


@dataclass(frozen=True)
class TrainingResult:
    model_proto: bytes
    wall_seconds: float
    peak_rss_bytes: int
    sentences_seen: int


def train(sample_root: str | Path, settings: TrainSettings, work_dir: Path) -> TrainingResult:
    """Train in a fresh child process; raise TrainingError with SentencePiece's reason on failure."""
    work_dir.mkdir(parents=True, exist_ok=True)
    model_file, report_file = work_dir / "model.proto", work_dir / "report.json"
    for stale in (model_file, report_file):
        stale.unlink(missing_ok=True)
    context = multiprocessing.get_context("spawn")
    child = context.Process(target=_train_child, args=(str(sample_root), settings, str(model_file), str(report_file)))
    started = time.monotonic()
    child.start()
    child.join()
    wall_seconds = time.monotonic() - started
    if not report_file.exists():
        raise TrainingError(
            f"the training process died (exit code {child.exitcode}) without a report; if the kernel killed it "
            "for memory, lower --max-sentences or draw a smaller sample"
        )
    report = json.loads(report_file.read_text())
    if "error" in report:
        raise TrainingError(_explain(report["error"]))
    return TrainingResult(model_file.read_bytes(), wall_seconds, report["peak_rss_bytes"], report["sentences_seen"])


def _explain(error: str) -> str:
    if "Vocabulary size too high" in error or "Vocabulary size is too high" in error:
        return f"{error.strip()}\n  the sample is too small for this --vocab-size: lower it or draw a larger sample"
    return error


def _train_child(sample_root: str, settings: TrainSettings, model_file: str, report_file: str) -> None:
    import io

    import sentencepiece as spm

    counter = [0]
    try:
        spm.set_random_generator_seed(settings.seed)
        proto = io.BytesIO()
        sentences = sample_sentences(sample_root, settings.max_sentence_bytes, counter)
        spm.SentencePieceTrainer.train(
            sentence_iterator=sentences, model_writer=proto, **sentencepiece_options(settings)
        )
        Path(model_file).write_bytes(proto.getvalue())
        report: dict[str, Any] = {"sentences_seen": counter[0]}
    except Exception as error:  # noqa: BLE001 - reported to the parent, which raises TrainingError
        message = str(error) or traceback.format_exc(limit=3)
        report = {"error": f"{type(error).__name__}: {message}"}
    report["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    Path(report_file).write_text(json.dumps(report))
