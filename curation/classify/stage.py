"""`corpusmill classify IN --out OUT`, `classify train-code-model --out MODEL` and `classify train-lid-refiner`.

Classification is an annotator on `map_dataset`: every document is kept, with the label
columns of `curation.classify.annotate` added; models load once per worker process.
Both commands return their tables as data (the label mix, the code model's accuracy);
their ``render`` functions turn them into the lines the CLI prints.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from corpusmill.curation.classify.annotate import WORKER_THREADS, ClassifyConfig, DocumentClassifier
from corpusmill.curation.classify.code_corpus import SourceRoot, default_source_roots, sample_corpus
from corpusmill.curation.classify.code_model import TrainingSettings, packaged_code_model_path, train_code_model
from corpusmill.curation.classify.identifiers import Lid176Heliport, identifier_versions
from corpusmill.curation.classify.labels import CATEGORIES, CATEGORY, CODE_LANG, LABEL_COLUMNS, LANG
from corpusmill.curation.classify.langid import NO_REFINER, bundled_lid_model_path, refiner_path
from corpusmill.curation.classify.lid_refiner_train import (
    REFINER_GROUPS,
    RefinerSettings,
    catalog_chunks,
    train_refiner,
)
from corpusmill.curation.classify.thresholds import thresholds_path
from corpusmill.curation.command import StageCommand
from corpusmill.curation.dataset import Dataset, Manifest
from corpusmill.curation.errors import MissingFileError
from corpusmill.curation.executor import Executor
from corpusmill.curation.options import APPEND, option
from corpusmill.curation.shard_map import BatchFn, map_dataset
from corpusmill.curation.unit_outputs import BatchOutcome

STAGE = "classify"

LabelMix = dict[str, Counter[str]]
"""Documents per label value, for each of ``labels.LABEL_COLUMNS``."""


@dataclass(frozen=True, kw_only=True)
class ClassifyOptions(ClassifyConfig):
    """`corpusmill classify IN --out OUT [--lid NAME] [thresholds]`: ClassifyConfig plus where to read and write."""

    input: str = option(positional=True, help="input dataset directory")
    out: str = option(help="output dataset directory")


@dataclass(frozen=True)
class Classified:
    """What `classify` made: the output's manifest and its label mix."""

    manifest: Manifest
    label_mix: LabelMix


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
    """The thresholds alone, model paths pinned (absolute), so every worker and the resume check read the same files."""
    settings = {field.name: getattr(config, field.name) for field in fields(ClassifyConfig)}
    settings["lid_model"] = str(Path(config.lid_model or bundled_lid_model_path()).resolve())
    settings["code_model"] = str(Path(config.code_model or packaged_code_model_path()).resolve())
    refiner = refiner_path(config.lid_refiner) if config.lid == Lid176Heliport.name else None
    settings["lid_refiner"] = str(refiner.resolve()) if refiner else NO_REFINER
    return ClassifyConfig(**settings)


def classify_dataset(options: ClassifyOptions, *, executor: Executor, overwrite: bool = False) -> Classified:
    """Label every document of ``options.input`` into ``options.out``; resumable like every stage."""
    config = resolved_config(options)
    recorded = {
        **asdict(config),
        "threads": WORKER_THREADS,  # recorded since the first release: outputs made then still resume
        "lid_model_digest": _file_digest(config.lid_model),
        "code_model_digest": _file_digest(config.code_model),
        "lid_thresholds_digest": _file_digest(str(thresholds_path())),
        "lid_refiner_digest": None if config.lid_refiner == NO_REFINER else _file_digest(config.lid_refiner),
        "lid_packages": identifier_versions(config.lid),
    }
    manifest = map_dataset(
        options.input, options.out, STAGE, recorded, ClassifyBatches(config), executor=executor, overwrite=overwrite
    )
    return Classified(manifest, label_mix(options.out))


def _file_digest(path: str | None) -> str:
    """A changed model file must not silently resume an output labelled by the old one."""
    if path is None or not Path(path).is_file():
        raise MissingFileError(f"model file not found: {path}")
    return xxhash.xxh64_hexdigest(Path(path).read_bytes())


def label_mix(out_dir: str | Path) -> LabelMix:
    """Documents per category, per language and per code language of a classified dataset."""
    dataset = Dataset.open(out_dir)
    mix: LabelMix = {column: Counter() for column in LABEL_COLUMNS}
    for shard in dataset.shards:
        for batch in dataset.iter_batches(shard, columns=list(LABEL_COLUMNS)):
            for column in LABEL_COLUMNS:
                for entry in pc.value_counts(batch.column(column).drop_null()).to_pylist():
                    mix[column][entry["values"]] += entry["counts"]
    return mix


def format_label_mix(mix: LabelMix, top: int = 12) -> str:
    """The mix as the three lines the demo and the CLI print after classifying."""
    total = sum(mix[CATEGORY].values()) or 1

    def share(counter: Counter[str]) -> str:
        return (
            ", ".join(f"{label} {count:,} ({count / total:.1%})" for label, count in counter.most_common(top)) or "none"
        )

    return "\n".join(
        [
            f"[{STAGE}] categories: {share(mix[CATEGORY])}",
            f"[{STAGE}] languages: {share(mix[LANG])}",
            f"[{STAGE}] code languages: {share(mix[CODE_LANG])}",
        ]
    )


def render_classified(result: Classified) -> str:
    return format_label_mix(result.label_mix)


# --- classify train-code-model ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TrainCodeModelOptions:
    """`corpusmill classify train-code-model --out MODEL.ftz [--source-root GLOB[=LANGUAGE]]...`."""

    out: str = option(help="the .ftz model file to write (its report goes next to it, as .json)")
    source_root: tuple[str, ...] = option(
        (),
        cli=APPEND,
        metavar="GLOB[=LANGUAGE]",
        help="where to collect labelled files (repeatable; default: the machine's standard libraries, headers, "
        "installed packages and docs); =LANGUAGE forces the label",
    )
    max_train_files: int = option(500, help="training files per language")
    max_test_files: int = option(150, help="held-out files per language")
    epoch: int = option(TrainingSettings.epoch, help="fastText epochs")
    seed: int = option(TrainingSettings.seed, help=f"fastText seed (default: {TrainingSettings.seed})")


@dataclass(frozen=True)
class TrainedCodeModel:
    """The model written and its training report (held-out accuracy overall and per language)."""

    model: str
    report: dict[str, Any]


def parse_source_root(spec: str) -> SourceRoot:
    pattern, _, language = spec.partition("=")
    return SourceRoot(pattern, language or None)


def train_code_model_from_sources(
    options: TrainCodeModelOptions, *, executor: Executor, overwrite: bool = False
) -> TrainedCodeModel:
    """Collect labelled files, train the content code model and write it with its report.

    Training runs in this process (fastText, one thread, reproducible); the model file is
    always rewritten, so ``overwrite`` changes nothing.
    """
    roots = tuple(map(parse_source_root, options.source_root)) or default_source_roots()
    corpus = sample_corpus(roots, {"train": options.max_train_files, "test": options.max_test_files})
    settings = TrainingSettings(epoch=options.epoch, seed=options.seed)
    return TrainedCodeModel(options.out, train_code_model(corpus, Path(options.out), settings))


def render_trained_code_model(result: TrainedCodeModel) -> str:
    report = result.report
    lines = [
        f"[{STAGE}] code model {result.model}: {len(report['train_files'])} labels, "
        f"held-out accuracy {report['held_out_accuracy']:.4f} on {sum(report['test_files'].values())} files; "
        f"report in {Path(result.model).with_suffix('.json')}"
    ]
    for language, accuracy in report["held_out_accuracy_by_language"].items():
        lines.append(f"  {language:<20} {accuracy:.3f}  ({report['test_files'][language]} files)")
    return "\n".join(lines)


# --- classify train-lid-refiner -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TrainLidRefinerOptions:
    """`corpusmill classify train-lid-refiner --out MODEL.ftz [--locale-root DIR] [--exclude-catalog NAME.mo]...`."""

    out: str = option(help="the .ftz model to write (its card, with the groups it decides, goes next to it as .json)")
    locale_root: str = option(
        "/usr/share/locale", help="gettext catalogs to train on: LOCALE_ROOT/<locale>/LC_MESSAGES/*.mo"
    )
    exclude_catalog: tuple[str, ...] = option(
        (),
        cli=APPEND,
        metavar="NAME.mo",
        help="a catalog to leave out in every locale, e.g. to evaluate on it (repeatable)",
    )
    min_chunks: int = option(RefinerSettings.min_chunks, help="chunks of text a language needs to join its group")
    epoch: int = option(RefinerSettings.epoch, help="fastText epochs")
    seed: int = option(RefinerSettings.seed, help=f"fastText seed (default: {RefinerSettings.seed})")


@dataclass(frozen=True)
class TrainedRefiner:
    """The model written and its card (groups, chunks per language, settings)."""

    model: str
    card: dict[str, Any]


def train_lid_refiner_from_catalogs(
    options: TrainLidRefinerOptions, *, executor: Executor, overwrite: bool = False
) -> TrainedRefiner:
    """Train the group refiner on the machine's catalogs (one fastText thread, reproducible); always rewritten."""
    settings = RefinerSettings(min_chunks=options.min_chunks, epoch=options.epoch, seed=options.seed)
    chunks = catalog_chunks(
        options.locale_root, {code for group in REFINER_GROUPS for code in group}, settings.chunk_chars
    )
    return TrainedRefiner(options.out, train_refiner(chunks, options.out, settings, options.exclude_catalog))


def render_trained_refiner(result: TrainedRefiner) -> str:
    card = result.card
    lines = [
        f"[{STAGE}] lid refiner {result.model}: {len(card['groups'])} groups from {card['catalogs']:,} catalogs; "
        f"card in {Path(result.model).with_suffix('.json')}"
    ]
    for group in card["groups"]:
        lines.append("  " + " / ".join(f"{code} ({card['chunks'][code]:,} chunks)" for code in group))
    return "\n".join(lines)


COMMANDS = [
    StageCommand(
        ("classify",),
        f"label language, category ({'/'.join(CATEGORIES)}) and code language",
        ClassifyOptions,
        classify_dataset,
        render_classified,
    ),
    StageCommand(
        ("classify", "train-code-model"),
        "train the content code model (fastText) on labelled files found on this machine",
        TrainCodeModelOptions,
        train_code_model_from_sources,
        render_trained_code_model,
    ),
    StageCommand(
        ("classify", "train-lid-refiner"),
        "train the language-ID group refiner (fastText) on this machine's gettext catalogs",
        TrainLidRefinerOptions,
        train_lid_refiner_from_catalogs,
        render_trained_refiner,
    ),
]
