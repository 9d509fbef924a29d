"""Tokenization speed: `corpusmill tokenize` end to end against two single-process baselines.

Same documents, same SentencePiece model, one table:

  sentencepiece loop   texts already in memory, ``encode(text)`` one document at a time:
                       the raw encoder rate, no I/O at all
  megatron-style       what Megatron-LM's ``tools/preprocess_data.py`` does per worker: read
                       JSONL line by line, ``json.loads``, encode, append EOD, and write with
                       megatron-core's own ``IndexedDatasetBuilder``
  corpusmill tokenize  ``tokenize_dataset`` on Ray from the Parquet dataset to finished
                       prefixes and tokenized.json (Ray already running; its start-up is reported apart)

Rates per core divide by the worker count. The documents are real text found on this
machine (Debian docs, the Python standard library, C headers, gettext translations).

    python benchmarks/tokenize_speed.py --mb 40 --num-cpus 1 2 --repeats 3 --report bench_tokenize.md
"""

from __future__ import annotations

import os
import sys

# This file shares its name with the standard library's `tokenize`, which numpy and pyarrow
# import: keep its own folder off the import path before importing anything else.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != _HERE]

import argparse
import gzip
import io
import json
import platform
import shutil
import statistics
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import cycle
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from corpusmill.curation.megatron.encoder import describe_tokenizer
from corpusmill.curation.megatron.stage import TokenizeOptions, tokenize_dataset
from corpusmill.pipelines.demo_corpus import read_mo_translations
from corpusmill.pipelines.execution import RayExecutor

MAX_FILE_BYTES = 1_000_000
CATALOG_CHUNK = 50  # translated messages per multilingual document


def _text(path: Path) -> str | None:
    try:
        data = path.read_bytes()[: MAX_FILE_BYTES + 1]
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
        return None
    return text if 200 <= len(data) <= MAX_FILE_BYTES and "\x00" not in text else None


def _files(pattern_root: Path, pattern: str) -> Iterator[Path]:
    return (path for path in sorted(pattern_root.glob(pattern)) if path.is_file())


def _english() -> Iterator[dict[str, str]]:
    for path in _files(Path("/usr/share/doc"), "**/*"):
        if (text := _text(path)) is not None:
            yield {"text": text, "source": "debian_docs", "category": "english", "lang": "en", "code_lang": None}


def _code() -> Iterator[dict[str, str]]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    sources = [
        (_files(stdlib, "**/*.py"), "python", "cpython"),
        (_files(Path("/usr/include"), "**/*.h"), "c", "headers"),
    ]
    for paths, language, source in sources:
        for path in paths:
            if (text := _text(path)) is not None:
                yield {"text": text, "source": source, "category": "code", "lang": "en", "code_lang": language}


def _multilingual() -> Iterator[dict[str, str]]:
    for catalog in _files(Path("/usr/share/locale"), "*/LC_MESSAGES/*.mo"):
        locale = catalog.parts[-3]
        try:
            messages = read_mo_translations(catalog)
        except (ValueError, LookupError, UnicodeDecodeError):
            continue
        for start in range(0, len(messages), CATALOG_CHUNK):
            text = "\n".join(messages[start : start + CATALOG_CHUNK])
            if len(text) >= 200:
                yield {
                    "text": text,
                    "source": "catalogs",
                    "category": "multilingual",
                    "lang": locale,
                    "code_lang": None,
                }


def collect_documents(max_bytes: int) -> list[dict[str, str]]:
    """Round-robin over the three kinds until ``max_bytes`` of UTF-8 text, so every shard mixes them."""
    streams = cycle([_english(), _code(), _multilingual()])
    documents, total, exhausted = [], 0, 0
    while total < max_bytes and exhausted < 3:
        row = next(next(streams), None)
        if row is None:
            exhausted += 1
            continue
        exhausted = 0
        row["id"] = f"doc-{len(documents)}"
        documents.append(row)
        total += len(row["text"].encode())
    return documents


def write_inputs(documents: list[dict[str, str]], work: Path, shards: int) -> tuple[Path, Path]:
    """The same documents as a Parquet dataset (for corpusmill) and as JSONL (for Megatron's way)."""
    dataset = work / "dataset"
    dataset.mkdir(parents=True)
    schema = pa.schema([(name, pa.string()) for name in ("id", "text", "source", "category", "lang", "code_lang")])
    for index in range(shards):
        rows = documents[index::shards]
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), dataset / f"part-{index:03d}.parquet")
    jsonl = work / "documents.jsonl"
    with open(jsonl, "w") as handle:
        handle.writelines(json.dumps({"text": row["text"]}) + "\n" for row in documents)
    return dataset, jsonl


def train_model(documents: list[dict[str, str]], work: Path, vocab_size: int, sample_bytes: int) -> Path:
    import sentencepiece

    sample, total = [], 0
    for row in documents:
        sample.append(row["text"])
        total += len(row["text"])
        if total >= sample_bytes:
            break
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sample), model_writer=model, vocab_size=vocab_size, model_type="bpe",
        byte_fallback=True, max_sentence_length=1 << 20, minloglevel=2, num_threads=os.cpu_count(),
    )  # fmt: skip
    path = work / "tokenizer.model"
    path.write_bytes(model.getvalue())
    return path


def sentencepiece_loop(model: Path, texts: list[str]) -> int:
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(model))
    return sum(len(processor.encode(text)) for text in texts)


def megatron_style(model: Path, jsonl: Path, out: Path) -> int:
    import numpy as np
    import sentencepiece
    from megatron.core.datasets.indexed_dataset import DType, IndexedDatasetBuilder

    processor = sentencepiece.SentencePieceProcessor(model_file=str(model))
    dtype = DType.optimal_dtype(processor.vocab_size())
    builder = IndexedDatasetBuilder(f"{out}.bin", dtype=dtype)
    tokens = 0
    with open(jsonl) as handle:
        for line in handle:
            ids = processor.encode(json.loads(line)["text"]) + [processor.eos_id()]
            builder.add_document(np.array(ids, dtype=dtype), [len(ids)])
            tokens += len(ids)
    builder.finalize(f"{out}.idx")
    return tokens


def corpusmill_tokenize(model: Path, dataset: Path, out: Path) -> int:
    """On the Ray that ``_start_ray`` already started (the executor reuses it)."""
    options = TokenizeOptions(input=str(dataset), tokenizer=str(model), out=str(out))
    return tokenize_dataset(options, executor=RayExecutor(), overwrite=True).tokens


def _start_ray(num_cpus: int) -> float:
    import ray

    from corpusmill.pipelines.execution import ensure_ray

    if ray.is_initialized():
        ray.shutdown()
    start = time.perf_counter()
    ensure_ray(num_cpus=num_cpus)
    return time.perf_counter() - start


RAW = ("sentencepiece loop (raw encode)", 1)


def cpu_seconds() -> float:
    """User + system CPU of this process and all its descendants (Ray's raylet, GCS and workers)."""
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            continue
    return total


@dataclass
class Timings:
    """Wall and CPU seconds per (method, workers), their token counts, and the load they ran under.

    CPU seconds make the per-core comparison fair on a shared machine: other processes stretch
    wall time, not the CPU time a method itself burns.
    """

    walls: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    cpus: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    tokens: dict[tuple[str, int], int] = field(default_factory=dict)
    ray_start: dict[int, float] = field(default_factory=dict)
    load: list[float] = field(default_factory=list)

    def measure(self, key: tuple[str, int], fn: Callable[[], int]) -> None:
        self.load.append(os.getloadavg()[0])
        cpu, start = cpu_seconds(), time.perf_counter()
        self.tokens[key] = fn()
        self.walls.setdefault(key, []).append(time.perf_counter() - start)
        self.cpus.setdefault(key, []).append(cpu_seconds() - cpu)


def run(args: argparse.Namespace) -> str:
    work = Path(tempfile.mkdtemp(prefix="bench_tokenize_", dir=args.work))
    try:
        documents = collect_documents(int(args.mb * 1e6))
        text_bytes = sum(len(row["text"].encode()) for row in documents)
        dataset, jsonl = write_inputs(documents, work, args.shards)
        if args.tokenizer:
            model = Path(args.tokenizer)
        else:
            model = train_model(documents, work, args.vocab, int(args.train_mb * 1e6))
        info = describe_tokenizer(model)
        texts = [row["text"] for row in documents]
        baselines: list[tuple[tuple[str, int], Callable[[], int]]] = [
            (RAW, lambda: sentencepiece_loop(model, texts)),
            (("megatron-style preprocess (JSONL -> IndexedDatasetBuilder)", 1), lambda: megatron_style(model, jsonl, work / "megatron")),
        ]  # fmt: skip
        warmup_dataset, warmup_jsonl = write_inputs(documents[: 2 * args.shards], work / "warmup", args.shards)
        megatron_style(model, warmup_jsonl, work / "warmup" / "megatron")  # imports megatron-core untimed
        timings = Timings()
        for workers in args.num_cpus:
            timings.ray_start[workers] = _start_ray(workers)
            corpusmill_tokenize(model, warmup_dataset, work / "warmup" / "out")  # workers started, model loaded
            ours = ((f"corpusmill tokenize (Ray, {workers} workers)", workers), lambda: corpusmill_tokenize(model, dataset, work / "out"))  # fmt: skip
            for _ in range(args.repeats):  # interleaved, so background load hits every method alike
                for key, fn in [*baselines, ours]:
                    timings.measure(key, fn)
        corpus = (
            f"Corpus: {len(documents):,} real documents, {text_bytes / 1e6:.1f} MB UTF-8 text, {args.shards} Parquet "
            f"shards; tokenizer: SentencePiece BPE, vocab {info.vocab_size:,} ({info.dtype.name} tokens), "
            f"sha256 {info.sha256[:12]}"
        )
        return report(args, corpus, text_bytes, timings)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(args: argparse.Namespace, corpus: str, text_bytes: int, timings: Timings) -> str:
    raw_per_cpu = timings.tokens[RAW] / statistics.median(timings.cpus[RAW])
    machine = (
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; 1-minute load average {min(timings.load):.1f}-{max(timings.load):.1f} "
        "before the runs"
    )
    lines = [
        machine,
        corpus,
        (
            f"Command: `python benchmarks/tokenize_speed.py {' '.join(sys.argv[1:])}`; median of {args.repeats} "
            "interleaved runs per worker count"
        ),
        "",
        (
            "| method | workers | wall s | CPU s | Mtokens/s (wall) | Mtokens per CPU-s | MB per CPU-s "
            "| raw / this, per CPU-s |"
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (name, workers), walls in timings.walls.items():
        wall, cpu = statistics.median(walls), statistics.median(timings.cpus[(name, workers)])
        tokens = timings.tokens[(name, workers)]
        lines.append(
            f"| {name} | {workers} | {wall:.2f} | {cpu:.2f} | {tokens / wall / 1e6:.3f} | {tokens / cpu / 1e6:.3f} | "
            f"{text_bytes / cpu / 1e6:.2f} | {raw_per_cpu / (tokens / cpu):.2f}x |"
        )
    starts = ", ".join(f"{workers} workers {seconds:.1f}s" for workers, seconds in timings.ray_start.items())
    lines += [
        "",
        (
            f"Tokens: {timings.tokens[RAW]:,} from the raw loop; the other methods add one EOD per document. "
            f"Ray start-up and a warm-up run on {2 * args.shards} documents, not in the walls above: {starts}. CPU s counts this process and every descendant "
            "(Ray's raylet, GCS and workers included)."
        ),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=40, help="MB of text to tokenize (default: %(default)s)")
    parser.add_argument("--shards", type=int, default=8, help="Parquet shards = Ray units (default: %(default)s)")
    parser.add_argument("--num-cpus", type=int, nargs="+", default=[os.cpu_count()], help="Ray worker counts to try")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokenizer", default=None, help="use this .model instead of training one")
    parser.add_argument(
        "--vocab", type=int, default=32_000, help="vocabulary of the trained model (default: %(default)s)"
    )
    parser.add_argument("--train-mb", type=float, default=8, help="MB of the corpus to train the model on")
    parser.add_argument("--work", default=None, help="scratch directory (default: the system temp dir)")
    parser.add_argument("--report", default=None, help="also write the markdown table here")
    args = parser.parse_args()
    table = run(args)
    print(table)
    if args.report:
        Path(args.report).write_text(table + "\n")


if __name__ == "__main__":
    main()
