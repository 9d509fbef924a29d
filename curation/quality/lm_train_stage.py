"""`corpusmill lm train IN... --lang LANG --out DIR`: a CCNet-style KenLM model over SentencePiece pieces.

What CCNet does to make its perplexity models, on our document datasets:

1. read the documents of ``--lang`` (all of them when the input has no ``lang`` column),
   normalise every line (:mod:`.normalize`) and write the lines to one text file; one document
   in ``--held-out-every`` (chosen by a hash of its id) is kept out, for the card's percentiles;
2. train a SentencePiece unigram model on those lines (a random subset of at most
   ``--piece-sentences``), in a child process so its peak memory is its own;
3. cut every line into pieces and stream them into ``lmplz`` (a modified Kneser-Ney n-gram
   model of ``--order``; ``-S`` bounds its sorting memory and ``-T`` puts its spill files in
   the run's scratch directory), then ``build_binary`` the ARPA file;
4. score a sample of held-out and of training documents with the finished model and write
   their perplexity percentiles 0..100 into the card (``corpusmill quality`` takes its
   head / tail cut-offs from the held-out ones).

One phase of one unit, run by the executor it is handed; the card (``card.json``,
:mod:`.lm_card`) is the marker, published last.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import random
import resource
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash
from corpusmill.curation.atomic import atomic_path
from corpusmill.curation.classify.labels import LANG
from corpusmill.curation.command import StageCommand
from corpusmill.curation.dataset import Dataset
from corpusmill.curation.documents import check_document_columns, valid_mask
from corpusmill.curation.errors import ConfigError, CorpusmillError
from corpusmill.curation.executor import Executor
from corpusmill.curation.options import option
from corpusmill.curation.quality.kenlm_tools import ToolProcess, ToolRun, run_tool, tool_path
from corpusmill.curation.quality.lm_card import CARD_FILE, LM_FILE, PERCENTILES, PIECES_FILE, STAGE, LMCard
from corpusmill.curation.quality.normalize import normalized_lines
from corpusmill.curation.quality.perplexity import DocumentScorer
from corpusmill.curation.quality.utf8 import invalid_utf8_mask
from corpusmill.curation.stage import StageRun, json_config

TRAIN_UNIT = "lm"
NORMALIZATION = "ccnet"  # cc_net/text_normalizer.py normalize(): strip, lower, accents, digits, punct, non-printing
ENCODE_BATCH_LINES = 20_000
STRUCTURES = ("probing", "trie")


class EmptyCorpusError(CorpusmillError, ValueError):
    """No document of the requested language to train on."""


@dataclass(frozen=True, kw_only=True)
class LMSettings:
    """Everything that decides the model (where it is read from and written to aside)."""

    lang: str = option(help="language of the model: only rows whose `lang` column equals it are used")
    order: int = option(5, help="n-gram order (CCNet: 5)")
    vocab_size: int = option(
        65536, help="SentencePiece pieces, an upper bound: a small corpus gets fewer (CCNet: 65536)"
    )
    piece_sentences: int = option(1_000_000, help="lines SentencePiece trains on (a random subset of the corpus)")
    character_coverage: float = option(0.9995, help="share of characters SentencePiece covers (CCNet: 0.9995)")
    prune: tuple[int, ...] = option(
        (), help="lmplz --prune count thresholds per order, e.g. 0,0,1 (default: none, as CCNet)"
    )
    structure: str = option("probing", choices=STRUCTURES, help="build_binary data structure (probing: fastest)")
    held_out_every: int = option(
        20, help="one document in N (by a hash of --held-out-by) is kept out of the LM and scored for the percentiles"
    )
    held_out_by: str = option(
        "id",
        help="column whose value decides held-out documents; a group column (a URL's domain, a source file) keeps "
        "near-duplicate parts of one group out of the LM together, so the percentiles are those of unseen text",
    )
    scored_documents: int = option(10_000, help="documents scored (each of held-out and training) for percentiles")
    seed: int = option(0, help="seed of SentencePiece's sentence sampling and of the scored samples")

    def __post_init__(self) -> None:
        if not 2 <= self.order <= 6:
            raise ConfigError(f"--order must be within 2..6 (KenLM is built for up to 6), got {self.order}")
        if len(self.prune) > self.order:
            raise ConfigError(f"--prune takes at most --order ({self.order}) thresholds, got {len(self.prune)}")
        if self.held_out_every < 2:
            raise ConfigError(f"--held-out-every must be at least 2, got {self.held_out_every}")
        if self.vocab_size < 100:
            raise ConfigError(f"--vocab-size must be at least 100, got {self.vocab_size}")

    def record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class LMTrainOptions(LMSettings):
    """`corpusmill lm train IN... --lang LANG --out DIR [--order N] [--memory 4G] ...`."""

    input: tuple[str, ...] = option(positional=True, help="document datasets to train on")
    out: str = option(help="directory for lm.binary, pieces.model and card.json")
    memory: str = option("4G", help="lmplz sorting memory (-S; like GNU sort: 4G, 800M, 30%%); bounds its peak memory")
    threads: int = option(2, help="SentencePiece threads (training and encoding)")

    @property
    def settings(self) -> LMSettings:
        return LMSettings(**{name: getattr(self, name) for name in LMSettings.__dataclass_fields__})


# --- reading the corpus -------------------------------------------------------------------------


@dataclass
class _Reservoir:
    """A uniform sample of at most ``size`` documents (algorithm R), for the percentiles."""

    size: int
    rng: random.Random
    seen: int = 0

    def __post_init__(self) -> None:
        self.texts: list[str] = []

    def offer(self, text: str) -> None:
        self.seen += 1
        if len(self.texts) < self.size:
            self.texts.append(text)
        elif (slot := self.rng.randrange(self.seen)) < self.size:
            self.texts[slot] = text


@dataclass
class _Corpus:
    """What the reading pass found: counts, and the samples to score."""

    documents: int = 0
    bytes: int = 0
    lines: int = 0
    held_out_documents: int = 0
    held_out_bytes: int = 0
    other_language_documents: int = 0
    invalid_documents: int = 0


def _language_texts(dataset: Dataset, settings: LMSettings, corpus: _Corpus) -> Iterator[tuple[str, str]]:
    """(held-out key, text) of the valid documents of ``lang`` (all valid ones without a ``lang`` column);
    the rest is counted."""
    lang, key = settings.lang, settings.held_out_by
    for shard in dataset.shards:
        for batch in dataset.iter_batches(shard, columns=["id", "text", "source", LANG, key]):
            valid = valid_mask(batch, shard.name) & ~invalid_utf8_mask(batch["text"])
            corpus.invalid_documents += int((~valid).sum())
            if LANG in batch.schema.names:
                same_language = pc.fill_null(pc.equal(batch[LANG], lang), False).to_numpy(zero_copy_only=False)
                corpus.other_language_documents += int((valid & ~same_language).sum())
                valid &= same_language
            kept = batch.filter(pa.array(valid))
            yield from zip(pc.cast(kept[key], pa.string()).to_pylist(), kept["text"].to_pylist())


def _write_corpus(
    datasets: list[Dataset], settings: LMSettings, text_path: Path
) -> tuple[_Corpus, list[str], list[str]]:
    """Normalised training lines into ``text_path``; returns counts and the held-out / training samples."""
    corpus = _Corpus()
    held_out = _Reservoir(settings.scored_documents, random.Random(settings.seed))
    trained = _Reservoir(settings.scored_documents, random.Random(settings.seed + 1))
    with text_path.open("w", encoding="utf-8") as out:
        for dataset in datasets:
            for group, text in _language_texts(dataset, settings, corpus):
                nbytes = len(text.encode("utf-8"))
                if xxhash.xxh64_intdigest(group or "") % settings.held_out_every == 0:
                    corpus.held_out_documents += 1
                    corpus.held_out_bytes += nbytes
                    held_out.offer(text)
                    continue
                lines = normalized_lines(text)
                if lines:
                    out.write("\n".join(lines))
                    out.write("\n")
                corpus.documents += 1
                corpus.bytes += nbytes
                corpus.lines += len(lines)
                trained.offer(text)
    return corpus, held_out.texts, trained.texts


# --- the three training steps ------------------------------------------------------------------


def _train_pieces_child(arguments: dict[str, Any], seed: int, results: Any) -> None:
    """Runs in a spawned child: SentencePiece training, then the child's own peak memory."""
    import sentencepiece as spm

    try:
        spm.set_random_generator_seed(seed)
        spm.SentencePieceTrainer.train(**arguments)
        results.put({"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024})
    except Exception as error:  # reported to the parent, which raises it as a user-facing error
        results.put({"error": f"{type(error).__name__}: {error}"})


def train_pieces(text_path: Path, model_prefix: Path, settings: LMSettings, threads: int) -> ToolRun:
    """SentencePiece unigram model on the normalised lines, as CCNet trains its piece models."""
    arguments = {
        "input": str(text_path),
        "model_prefix": str(model_prefix),
        "model_type": "unigram",
        "vocab_size": settings.vocab_size,
        "hard_vocab_limit": False,
        "character_coverage": settings.character_coverage,
        "input_sentence_size": settings.piece_sentences,
        "shuffle_input_sentence": True,
        "num_threads": threads,
        "minloglevel": 2,
    }
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    started = time.perf_counter()
    child = context.Process(target=_train_pieces_child, args=(arguments, settings.seed, results))
    child.start()
    outcome = results.get()
    child.join()
    if "error" in outcome:
        raise CorpusmillError(f"SentencePiece training failed: {outcome['error']}")
    command = ["sentencepiece.SentencePieceTrainer.train", *(f"--{k}={v}" for k, v in arguments.items())]
    return ToolRun(command, time.perf_counter() - started, outcome["peak_rss_bytes"])


def lmplz_command(settings: LMSettings, memory: str, temp_dir: Path) -> list[str]:
    command = [
        str(tool_path("lmplz")), "-o", str(settings.order), "-S", memory, "-T", f"{temp_dir}/",
        "--vocab_estimate", str(settings.vocab_size), "--discount_fallback", "--skip_symbols",
    ]  # fmt: skip
    if settings.prune:
        command += ["--prune", *map(str, settings.prune)]
    return command


def estimate_ngrams(
    pieces_model: Path, text_path: Path, arpa_path: Path, command: list[str], log: Path, threads: int
) -> tuple[ToolRun, int]:
    """Stream the corpus, cut into pieces, into lmplz; returns its run and the pieces it read."""
    import sentencepiece as spm

    pieces = spm.SentencePieceProcessor(model_file=str(pieces_model))
    total_pieces = 0
    with arpa_path.open("wb") as arpa:
        process = ToolProcess(command, stdin=-1, stdout=arpa, log=log)  # -1: subprocess.PIPE
        try:
            with text_path.open(encoding="utf-8") as lines:
                while batch := [line.rstrip("\n") for _, line in zip(range(ENCODE_BATCH_LINES), lines)]:
                    encoded = pieces.encode(batch, out_type=str, num_threads=threads)
                    total_pieces += sum(map(len, encoded))
                    process.stdin.write(("\n".join(" ".join(line) for line in encoded) + "\n").encode("utf-8"))
        except BrokenPipeError:
            pass  # lmplz stopped reading: wait() raises with its own message
        return process.wait(), total_pieces


def build_binary(arpa_path: Path, binary_path: Path, structure: str, memory: str, temp_dir: Path, log: Path) -> ToolRun:
    command = [str(tool_path("build_binary"))]
    if structure == "trie":
        command += ["-S", memory, "-T", f"{temp_dir}/"]
    return run_tool([*command, structure, str(arpa_path), str(binary_path)], log)


def perplexity_percentiles(scorer: DocumentScorer, texts: list[str]) -> list[float]:
    """Percentiles 0..100 of the documents' perplexities (all NaN-free documents; zeros when none)."""
    values = scorer.perplexities(texts) if texts else np.array([])
    values = values[np.isfinite(values)]
    if not len(values):
        return [0.0] * PERCENTILES
    return [round(float(v), 4) for v in np.percentile(values, np.arange(PERCENTILES))]


# --- the stage ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TrainUnit:
    inputs: tuple[str, ...]
    settings: LMSettings
    memory: str
    threads: int

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        started = time.perf_counter()
        work = run.work_dir("train")
        shutil.rmtree(work, ignore_errors=True)
        (work / "lmplz_tmp").mkdir(parents=True)
        datasets = [Dataset.open(path) for path in self.inputs]
        text_path = work / "normalized.txt"
        corpus, held_out, trained = _write_corpus(datasets, self.settings, text_path)
        if corpus.lines == 0:
            raise EmptyCorpusError(
                f"no text of language {self.settings.lang!r} in {', '.join(self.inputs)} "
                f"({corpus.other_language_documents} documents of other languages); check --lang against "
                "the inputs' `lang` column (run `corpusmill classify` first)"
            )
        read_seconds = time.perf_counter() - started
        pieces_run = train_pieces(text_path, work / "pieces", self.settings, self.threads)
        arpa_path = work / "lm.arpa"
        lmplz_run, total_pieces = estimate_ngrams(
            work / "pieces.model", text_path, arpa_path, lmplz_command(self.settings, self.memory, work / "lmplz_tmp"),
            work / "lmplz.log", self.threads,
        )  # fmt: skip
        with atomic_path(run.out / LM_FILE) as tmp:
            binary_run = build_binary(
                arpa_path, tmp, self.settings.structure, self.memory, work, work / "build_binary.log"
            )
        arpa_bytes = arpa_path.stat().st_size
        arpa_path.unlink()
        with atomic_path(run.out / PIECES_FILE) as tmp:
            shutil.copyfile(work / "pieces.model", tmp)
        scoring_started = time.perf_counter()
        scorer = DocumentScorer(run.out / PIECES_FILE, run.out / LM_FILE, self.threads)
        record = {
            "unit_id": unit["unit_id"],
            "corpus": asdict(corpus) | {"pieces": total_pieces},
            "pieces": scorer.pieces.get_piece_size(),
            "held_out_scored": len(held_out),
            "train_scored": len(trained),
            "ppl_percentiles": perplexity_percentiles(scorer, held_out),
            "train_ppl_percentiles": perplexity_percentiles(scorer, trained),
            "arpa_bytes": arpa_bytes,
            "lm_bytes": (run.out / LM_FILE).stat().st_size,
            "steps": {
                "read_and_normalize": {"wall_seconds": round(read_seconds, 2)},
                "sentencepiece": pieces_run.to_dict(),
                "lmplz": lmplz_run.to_dict(),
                "build_binary": binary_run.to_dict(),
                "percentiles": {"wall_seconds": round(time.perf_counter() - scoring_started, 2)},
            },
            "worker_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "wall_seconds": round(time.perf_counter() - started, 2),
        }
        return record


def corpus_fingerprint(datasets: list[Dataset], lang: str) -> str:
    """Identifies the training text: the inputs' contents, in order, and the language taken from them."""
    listing = "\n".join([lang, *(dataset.fingerprint() for dataset in datasets)]).encode()
    return hashlib.sha256(listing).hexdigest()[:16]


def train_lm(options: LMTrainOptions, *, executor: Executor, overwrite: bool = False) -> LMCard:
    """Train the model of ``options.lang`` on ``options.input`` into ``options.out``; return its card."""
    if not options.input:
        raise ConfigError("lm train needs at least one input dataset")
    tool_path("lmplz"), tool_path("build_binary")  # fail in one line, before any work, when not installed
    datasets = [Dataset.open(path) for path in options.input]
    for dataset in datasets:
        check_document_columns(dataset)
        for shard in dataset.shards:
            if options.held_out_by not in pq.ParquetFile(dataset.shard_path(shard)).schema_arrow.names:
                raise ConfigError(
                    f"--held-out-by {options.held_out_by}: {dataset.shard_path(shard)} has no such column"
                )
    settings = options.settings
    fingerprint = corpus_fingerprint(datasets, settings.lang)
    inputs = [str(Path(path).resolve()) for path in options.input]
    config = {
        "inputs": inputs,
        "corpus_fingerprint": fingerprint,
        "settings": settings.record(),
        "memory": options.memory,
    }
    run = StageRun(Path(options.out), STAGE, config, marker=CARD_FILE)
    if (finished := run.claim(executor, overwrite)) is not None:
        return LMCard.from_dict(finished, str(run.out / CARD_FILE))
    executor.progress.note(f"[lm train] {settings.order}-gram {settings.lang!r} model on {', '.join(options.input)}")
    unit = _TrainUnit(tuple(inputs), settings, options.memory, options.threads)
    (trained,) = run.run_phase("train", [{"unit_id": TRAIN_UNIT}], unit, executor)
    corpus = trained["corpus"]
    steps = trained["steps"]
    card = LMCard(
        stage=STAGE,
        config=json_config(config),
        language=settings.lang,
        order=settings.order,
        pieces=trained["pieces"],
        normalization=NORMALIZATION,
        corpus={
            "inputs": inputs,
            "fingerprint": fingerprint,
            "documents": corpus["documents"],
            "bytes": corpus["bytes"],
            "lines": corpus["lines"],
            "pieces": corpus["pieces"],
            "other_language_documents": corpus["other_language_documents"],
            "invalid_documents": corpus["invalid_documents"],
        },
        held_out={
            "every": settings.held_out_every,
            "by": settings.held_out_by,
            "documents": corpus["held_out_documents"],
            "bytes": corpus["held_out_bytes"],
            "scored": trained["held_out_scored"],
        },
        ppl_percentiles=trained["ppl_percentiles"],
        train_ppl_percentiles=trained["train_ppl_percentiles"],
        training={
            "steps": steps,
            "arpa_bytes": trained["arpa_bytes"],
            "wall_seconds": trained["wall_seconds"],
            "peak_rss_bytes": max(
                trained["worker_peak_rss_bytes"], *(step.get("peak_rss_bytes", 0) for step in steps.values())
            ),
            "train_scored": trained["train_scored"],
        },
        lm_bytes=trained["lm_bytes"],
    )
    run.publish(json_config(card.to_dict()))
    return card


def render_card(card: LMCard) -> str:
    training = card.training
    head, tail = card.cutoffs(30, 60)
    return (
        f"[lm train] {card.order}-gram {card.language!r} model over {card.pieces:,} pieces: "
        f"{card.corpus['documents']:,} documents, {card.corpus['bytes'] / 1e6:,.1f} MB, "
        f"{card.corpus['pieces']:,} pieces of text; lm.binary {card.lm_bytes / 1e6:,.1f} MB\n"
        f"[lm train] held-out perplexity p30 {head:,.1f}, p60 {tail:,.1f} ({card.held_out['scored']:,} documents); "
        f"{training['wall_seconds']:,.1f} s, peak memory {training['peak_rss_bytes'] / 2**30:.2f} GiB "
        f"(lmplz {training['steps']['lmplz']['peak_rss_bytes'] / 2**30:.2f} GiB)"
    )


COMMANDS = [
    StageCommand(
        ("lm", "train"),
        "train a CCNet-style KenLM n-gram model over SentencePiece pieces for one language",
        LMTrainOptions,
        train_lm,
        render_card,
    )
]
