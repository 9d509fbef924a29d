"""`corpusmill quality IN --out OUT --lm DIR...`: annotate every document with quality signals.

An annotator: every valid document is kept, with the columns of :mod:`.columns` added
(rows that break the document contract, or whose text is not UTF-8, are rejected with a
reason, as in every stage). Nothing is dropped here; `corpusmill select` chooses later, so
thresholds change without recomputing.

* ``ppl``: CCNet document perplexity (:mod:`.perplexity`) from the LM whose card names the
  document's ``lang``; null for languages without a model (and for documents with no text
  left after normalisation, which also get the reason ``ppl_no_text``).
* ``ppl_bucket``: ``head`` below the language's ``--head-percentile`` cut-off, ``tail`` at or
  above ``--tail-percentile``'s, ``middle`` between (CCNet's 30 / 60). The cut-offs come from
  the LM card's held-out distribution (``--cutoffs card``) or from this input's own
  distribution (``--cutoffs input``: a first pass scores everything, the second annotates
  from the cached scores). Both are written to ``OUT/cutoffs.json``.
* rule columns and ``quality_reasons`` (:mod:`.rules`): datatrove's prose filters for
  documents of ``--rule-langs`` that are not code, the code rules for ``category = code``;
  null where a family does not apply.
* ``quality_bucket`` (:class:`BucketRule`): by default ``high`` = ``head`` and no reason,
  ``low`` = ``tail`` or any reason, ``medium`` otherwise (so also: no model, no reason).

Models and filters load once per worker process. ``stats.json`` counts documents per
bucket and per reason (``counters``).
"""

from __future__ import annotations

import importlib.metadata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from corpusmill.curation.atomic import atomic_path, read_json, write_json_atomic
from corpusmill.curation.classify.labels import CATEGORY, CODE, LANG
from corpusmill.curation.command import StageCommand
from corpusmill.curation.dataset import DEFAULT_SHARD_BYTES, Dataset, DatasetError, Manifest, reject_table, text_bytes
from corpusmill.curation.documents import check_document_columns, split_invalid_documents
from corpusmill.curation.errors import ConfigError
from corpusmill.curation.executor import Executor
from corpusmill.curation.options import APPEND, option
from corpusmill.curation.quality.columns import (
    CODE_QUALITY_OK,
    HEAD,
    HIGH,
    LOW,
    MEDIUM,
    MIDDLE,
    OUTPUT_SCHEMA,
    PPL,
    PPL_BUCKET,
    PPL_BUCKETS,
    QUALITY_BUCKET,
    QUALITY_BUCKETS,
    QUALITY_REASONS,
    RULE_COLUMNS,
    TAIL,
)
from corpusmill.curation.quality.lm_card import LMDirectory, percentile_cutoffs
from corpusmill.curation.quality.perplexity import DocumentScorer
from corpusmill.curation.quality.rules import PROSE_COLUMNS, ProseRules, code_verdicts
from corpusmill.curation.quality.utf8 import INVALID_UTF8, invalid_utf8_mask
from corpusmill.curation.stage import StageRun, shard_units
from corpusmill.curation.stats import StageStats
from corpusmill.curation.unit_outputs import UnitOutputs

STAGE = "quality"
CUTOFFS_FILE = "cutoffs.json"
CUTOFF_SOURCES = ("card", "input")
NO_TEXT = "ppl_no_text"
Cutoffs = dict[str, tuple[float, float]]  # language -> (head, tail) perplexities


@dataclass(frozen=True, kw_only=True)
class BucketRule:
    """How ``ppl_bucket`` and the reasons make ``quality_bucket`` (default: high = head and no reason,
    low = tail or any reason, medium otherwise)."""

    high_ppl: tuple[str, ...] = option((HEAD,), help="ppl buckets a document may be in to be high (with no reason)")
    low_ppl: tuple[str, ...] = option((TAIL,), help="ppl buckets that make a document low")
    low_on_reason: bool = option(
        True, help="any failing rule makes a document low (--no-low-on-reason: it is medium at best)"
    )

    def __post_init__(self) -> None:
        for name in ("high_ppl", "low_ppl"):
            unknown = set(getattr(self, name)) - set(PPL_BUCKETS)
            if unknown:
                raise ConfigError(
                    f"--{name.replace('_', '-')}: unknown ppl bucket(s) {sorted(unknown)}; use {PPL_BUCKETS}"
                )
        if set(self.high_ppl) & set(self.low_ppl):
            raise ConfigError("--high-ppl and --low-ppl share a bucket; a document cannot be both")

    def bucket(self, ppl_bucket: str | None, has_reason: bool) -> str:
        if ppl_bucket in self.low_ppl or (has_reason and self.low_on_reason):
            return LOW
        if ppl_bucket in self.high_ppl and not has_reason:
            return HIGH
        return MEDIUM

    @property
    def rule(self) -> BucketRule:
        return BucketRule(**{field.name: getattr(self, field.name) for field in fields(BucketRule)})


@dataclass(frozen=True, kw_only=True)
class QualityOptions(BucketRule):
    """`corpusmill quality IN --out OUT --lm DIR [--lm DIR]... [--cutoffs card|input] [--no-rules]`."""

    input: str = option(positional=True, help="input dataset directory (with the `lang` column classify adds)")
    out: str = option(help="output dataset directory")
    lm: tuple[str, ...] = option(
        (), cli=APPEND, metavar="DIR", help="an `lm train` output directory (repeatable: one per language)"
    )
    cutoffs: str = option(
        "card",
        choices=CUTOFF_SOURCES,
        help="where the ppl percentiles come from: the LM card, or this input (two passes)",
    )
    head_percentile: float = option(30.0, help="below this percentile of ppl a document is head (CCNet: 30)")
    tail_percentile: float = option(60.0, help="at or above this percentile of ppl a document is tail (CCNet: 60)")
    rules: bool = option(True, help="apply the heuristic rules (--no-rules: perplexity only)")
    rule_langs: tuple[str, ...] = option(("en",), help="languages the prose rules (datatrove) apply to")
    max_rule_chars: int = option(
        1_000_000, help="prose documents longer than this are not checked (reason document_too_long_for_rules)"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.head_percentile < self.tail_percentile < 100.0:
            raise ConfigError(
                f"need 0 < --head-percentile < --tail-percentile < 100, got {self.head_percentile} and {self.tail_percentile}"
            )


# --- the per-worker models -----------------------------------------------------------------------


@dataclass(frozen=True)
class Scoring:
    """What a worker loads once (hashable: the key of its cache): LMs per language, the rules."""

    lms: tuple[tuple[str, str], ...]  # (language, LM directory)
    rules: bool
    rule_langs: tuple[str, ...]
    max_rule_chars: int


class Models:
    """The loaded LMs and rule filters of one :class:`Scoring`."""

    def __init__(self, scoring: Scoring):
        self.scorers = {lang: DocumentScorer.open(LMDirectory.open(path)) for lang, path in scoring.lms}
        self.prose = (
            {lang: ProseRules(lang, scoring.max_rule_chars) for lang in scoring.rule_langs} if scoring.rules else {}
        )
        self.rules = scoring.rules

    def perplexities(self, table: pa.Table) -> np.ndarray:
        """float32 per document, NaN where its language has no model or nothing is left to score."""
        ppl = np.full(table.num_rows, np.nan, dtype=np.float32)
        langs = table[LANG].to_numpy(zero_copy_only=False)
        for lang, scorer in self.scorers.items():
            rows = np.flatnonzero(langs == lang)
            if len(rows):
                ppl[rows] = scorer.perplexities(table["text"].take(pa.array(rows)).to_pylist())
        return ppl

    def rule_verdicts(self, table: pa.Table) -> tuple[dict[str, list[bool | None]], list[list[str]]]:
        """Per rule column, per document, True / False / None (not applied); and the failing reasons."""
        rows = table.num_rows
        columns: dict[str, list[bool | None]] = {column: [None] * rows for column in RULE_COLUMNS}
        reasons: list[list[str]] = [[] for _ in range(rows)]
        if not self.rules:
            return columns, reasons
        categories = table[CATEGORY].to_numpy(zero_copy_only=False) if CATEGORY in table.schema.names else None
        code_rows = np.flatnonzero(categories == CODE) if categories is not None else np.array([], dtype=int)
        if len(code_rows):
            passed, code_reasons = code_verdicts(table["text"].take(pa.array(code_rows)))
            for row, ok, failed in zip(code_rows, passed, code_reasons):
                columns[CODE_QUALITY_OK][row] = ok
                reasons[row] += failed
        langs = table[LANG].to_pylist()
        is_code = np.zeros(rows, dtype=bool)
        is_code[code_rows] = True
        prose_rows = [row for row in range(rows) if not is_code[row] and langs[row] in self.prose]
        if prose_rows:
            ids = table["id"].take(pa.array(prose_rows)).to_pylist()
            texts = table["text"].take(pa.array(prose_rows)).to_pylist()
            for row, doc_id, text in zip(prose_rows, ids, texts):
                values, failed = self.prose[langs[row]].check(doc_id, text)
                for column, value in zip(PROSE_COLUMNS, values):
                    columns[column][row] = value
                reasons[row] += failed
        return columns, reasons


_LOADED: dict[Scoring, Models] = {}


def models_for(scoring: Scoring) -> Models:
    """Load once per worker process (Ray reuses workers across units and phases)."""
    if scoring not in _LOADED:
        _LOADED[scoring] = Models(scoring)
    return _LOADED[scoring]


# --- annotation ----------------------------------------------------------------------------------


def ppl_buckets(ppl: np.ndarray, langs: np.ndarray, cutoffs: Cutoffs) -> list[str | None]:
    """CCNet's bucketing: head below the head cut-off, middle below the tail cut-off, tail from there."""
    buckets: list[str | None] = [None] * len(ppl)
    for row, (value, lang) in enumerate(zip(ppl, langs)):
        if lang in cutoffs and np.isfinite(value):
            head, tail = cutoffs[lang]
            buckets[row] = HEAD if value < head else MIDDLE if value < tail else TAIL
    return buckets


def annotate(
    table: pa.Table, ppl: np.ndarray, models: Models, cutoffs: Cutoffs, rule: BucketRule, counters: Counter[str]
) -> pa.Table:
    """The documents with the quality columns (replacing any from an earlier run); counts go to ``counters``."""
    langs = table[LANG].to_numpy(zero_copy_only=False)
    buckets = ppl_buckets(ppl, langs, cutoffs)
    rule_columns, reasons = models.rule_verdicts(table)
    for row in np.flatnonzero(np.isnan(ppl)):
        if langs[row] in models.scorers:
            reasons[row].insert(0, NO_TEXT)
    quality = [rule.bucket(bucket, bool(failed)) for bucket, failed in zip(buckets, reasons)]
    counters.update(f"quality_bucket.{value}" for value in quality)
    counters.update(f"ppl_bucket.{value or 'null'}" for value in buckets)
    counters.update(f"reason.{reason}" for failed in reasons for reason in failed)
    values = {
        PPL: pa.array(ppl, pa.float32(), mask=np.isnan(ppl)),
        PPL_BUCKET: pa.array(buckets, pa.string()),
        **{column: pa.array(rule_columns[column], pa.bool_()) for column in RULE_COLUMNS},
        QUALITY_REASONS: pa.array(reasons, pa.list_(pa.string())),
        QUALITY_BUCKET: pa.array(quality, pa.string()),
    }
    table = table.drop_columns([name for name in OUTPUT_SCHEMA.names if name in table.schema.names])
    for field in OUTPUT_SCHEMA:
        table = table.append_column(field, values[field.name])
    return table


def _documents(dataset: Dataset, unit: dict[str, Any], outputs: UnitOutputs | None) -> Iterator[pa.Table]:
    """The valid documents of one shard, batch by batch, in shard order (both passes see the same rows).

    With ``outputs``, input is counted and bad rows are rejected there: text that is not UTF-8
    (found before anything converts it to Python), then the document contract's violations.
    """
    shard = dataset.shards[unit["index"]]
    for batch, rows in dataset.iter_numbered_batches(shard):
        bad = invalid_utf8_mask(batch["text"])
        if outputs is not None:
            outputs.stats.add_input(batch.num_rows, text_bytes(batch))
            outputs.reject(_utf8_rejects(batch.filter(pa.array(bad)), shard.name, rows[bad]))
        batch, rows = batch.filter(pa.array(~bad)), rows[~bad]
        valid, rejected = split_invalid_documents(batch, STAGE, shard.name, rows)
        if outputs is not None:
            outputs.reject(rejected)
        yield valid


def _utf8_rejects(bad: pa.Table, location: str, rows: np.ndarray) -> pa.Table:
    def raw(column: str) -> list[bytes | None]:
        return pc.cast(bad[column], pa.binary()).to_pylist()

    def lossy(column: str) -> list[str | None]:  # id and source may hold invalid UTF-8 too
        return [None if value is None else value.decode("utf-8", errors="replace") for value in raw(column)]

    return reject_table(
        STAGE,
        [INVALID_UTF8] * bad.num_rows,
        ["text is not valid UTF-8"] * bad.num_rows,
        [f"{location}:{row}" for row in rows],
        lossy("source"),
        lossy("id"),
        [value or b"" for value in raw("text")],
    )


@dataclass(frozen=True)
class _Plan:
    dataset: Dataset
    scoring: Scoring
    rule: BucketRule


@dataclass(frozen=True)
class _ScoreShard:
    """First pass of ``--cutoffs input``: every valid document's ppl and lang, cached for the second."""

    plan: _Plan

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        models = models_for(self.plan.scoring)
        pieces = [
            pa.table({LANG: batch[LANG].cast(pa.string()), PPL: pa.array(models.perplexities(batch), pa.float32())})
            for batch in _documents(self.plan.dataset, unit, None)
        ]
        scores = (
            pa.concat_tables(pieces)
            if pieces
            else pa.table({LANG: pa.array([], pa.string()), PPL: pa.array([], pa.float32())})
        )
        with (
            atomic_path(run.work_dir("score") / f"{unit['unit_id']}.arrow") as tmp,
            pa.ipc.new_file(tmp, scores.schema) as writer,
        ):
            writer.write_table(scores)
        return {"unit_id": unit["unit_id"], "documents": scores.num_rows}


def _cached_scores(run: StageRun, unit_id: str) -> np.ndarray:
    with pa.memory_map(str(run.work_dir("score") / f"{unit_id}.arrow")) as source:
        return pa.ipc.open_file(source).read_all()[PPL].to_numpy().astype(np.float32)


@dataclass(frozen=True)
class _AnnotateShard:
    plan: _Plan
    cutoffs: tuple[tuple[str, float, float], ...]
    cached: bool  # ppl from the first pass (--cutoffs input) rather than computed here

    def __call__(self, unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        models = models_for(self.plan.scoring)
        cutoffs = {lang: (head, tail) for lang, head, tail in self.cutoffs}
        outputs = UnitOutputs(run, unit["unit_id"], DEFAULT_SHARD_BYTES)
        counters: Counter[str] = Counter()
        cached = _cached_scores(run, unit["unit_id"]) if self.cached else None
        position = 0
        for documents in _documents(self.plan.dataset, unit, outputs):
            if cached is not None:
                ppl = cached[position : position + documents.num_rows]
                position += documents.num_rows
            else:
                ppl = models.perplexities(documents)
            outputs.keep(annotate(documents, ppl, models, cutoffs, self.plan.rule, counters))
        for name, value in counters.items():
            outputs.stats.count(name, value)
        return outputs.record()


# --- cut-offs ------------------------------------------------------------------------------------


def card_cutoffs(lms: dict[str, LMDirectory], options: QualityOptions) -> dict[str, dict[str, Any]]:
    return {
        lang: dict(zip(("head", "tail"), lm.card.cutoffs(options.head_percentile, options.tail_percentile)))
        | {"source": "card", "documents": lm.card.held_out["scored"]}
        for lang, lm in lms.items()
    }


def input_cutoffs(run: StageRun, units: list[dict[str, Any]], options: QualityOptions) -> dict[str, dict[str, Any]]:
    """Per language, the percentiles of this input's own perplexities (from the first pass's cache)."""
    tables = []
    for unit in units:
        with pa.memory_map(str(run.work_dir("score") / f"{unit['unit_id']}.arrow")) as source:
            tables.append(pa.ipc.open_file(source).read_all())
    scores = pa.concat_tables(tables)
    langs = scores[LANG].to_numpy(zero_copy_only=False)
    ppl = scores[PPL].to_numpy(zero_copy_only=False)
    result = {}
    for lang in sorted(set(langs[np.isfinite(ppl)].tolist())):
        values = ppl[(langs == lang) & np.isfinite(ppl)].astype(np.float64)
        table = np.percentile(values, np.arange(101))
        head, tail = percentile_cutoffs(table, options.head_percentile, options.tail_percentile)
        result[lang] = {"head": head, "tail": tail, "source": "input", "documents": len(values)}
    return result


# --- the stage -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Annotated:
    """What `quality` made: the output's manifest, its counters and the cut-offs used."""

    manifest: Manifest
    counters: dict[str, int]
    cutoffs: dict[str, dict[str, Any]]


def open_lms(paths: tuple[str, ...]) -> dict[str, LMDirectory]:
    lms: dict[str, LMDirectory] = {}
    for path in paths:
        lm = LMDirectory.open(path)
        if lm.card.language in lms:
            raise ConfigError(f"--lm {path} and --lm {lms[lm.card.language].root} are both {lm.card.language!r} models")
        lms[lm.card.language] = lm
    return lms


def _check_lang_column(dataset: Dataset) -> None:
    import pyarrow.parquet as pq

    for shard in dataset.shards:
        if LANG not in pq.ParquetFile(dataset.shard_path(shard)).schema_arrow.names:
            raise DatasetError(
                f"{dataset.shard_path(shard)}: no `{LANG}` column; run `corpusmill classify` on the input first"
            )


def quality(options: QualityOptions, *, executor: Executor, overwrite: bool = False) -> Annotated:
    """Annotate ``options.input`` into ``options.out``; resumable like every stage."""
    dataset = Dataset.open(options.input)
    check_document_columns(dataset)
    _check_lang_column(dataset)
    lms = open_lms(options.lm)
    scoring = Scoring(tuple((lang, str(lm.root)) for lang, lm in sorted(lms.items())), options.rules,
                      tuple(options.rule_langs), options.max_rule_chars)  # fmt: skip
    config = {
        "input": str(options.input),
        "input_fingerprint": dataset.fingerprint(),
        "lms": [lm.identity() for _, lm in sorted(lms.items())],
        "cutoffs": options.cutoffs,
        "percentiles": [options.head_percentile, options.tail_percentile],
        "rules": options.rules,
        "rule_langs": list(options.rule_langs),
        "max_rule_chars": options.max_rule_chars,
        "bucket_rule": {field.name: getattr(options, field.name) for field in fields(BucketRule)},
        "datatrove": importlib.metadata.version("datatrove"),
    }
    run = StageRun(Path(options.out), STAGE, config)
    if (finished := run.claim(executor, overwrite)) is not None:
        return _result(Manifest.from_dict(finished), run)
    plan = _Plan(dataset, scoring, options.rule)
    units = shard_units(dataset)
    if options.cutoffs == "input":
        run.run_phase("score", units, _ScoreShard(plan), executor)
        cutoffs = input_cutoffs(run, units, options)
    else:
        cutoffs = card_cutoffs(lms, options)
    write_json_atomic(run.out / CUTOFFS_FILE, cutoffs)
    pinned = tuple((lang, values["head"], values["tail"]) for lang, values in sorted(cutoffs.items()))
    records = run.run_phase("annotate", units, _AnnotateShard(plan, pinned, options.cutoffs == "input"), executor)
    return _result(run.finish(records, StageStats(STAGE)), run)


def _result(manifest: Manifest, run: StageRun) -> Annotated:
    stats = read_json(run.out / "stats.json")
    return Annotated(manifest, stats.get("counters", {}), read_json(run.out / CUTOFFS_FILE))


def render_annotated(result: Annotated) -> str:
    counters = result.counters
    total = sum(counters.get(f"quality_bucket.{bucket}", 0) for bucket in QUALITY_BUCKETS) or 1

    def share(prefix: str, values: tuple[str, ...]) -> str:
        return ", ".join(
            f"{v} {counters.get(prefix + v, 0):,} ({counters.get(prefix + v, 0) / total:.1%})" for v in values
        )

    reasons = sorted(((k.removeprefix("reason."), v) for k, v in counters.items() if k.startswith("reason.")),
                     key=lambda item: -item[1])  # fmt: skip
    cutoffs = "; ".join(f"{lang} head < {c['head']:,.1f} <= middle < {c['tail']:,.1f} <= tail ({c['source']})"
                        for lang, c in result.cutoffs.items())  # fmt: skip
    return "\n".join(
        [
            f"[{STAGE}] quality buckets: {share('quality_bucket.', QUALITY_BUCKETS)}",
            f"[{STAGE}] ppl buckets: {share('ppl_bucket.', (*PPL_BUCKETS, 'null'))}",
            f"[{STAGE}] cut-offs: {cutoffs or 'none (no --lm)'}",
            f"[{STAGE}] top reasons: {', '.join(f'{r} {n:,}' for r, n in reasons[:8]) or 'none'}",
        ]
    )


COMMANDS = [
    StageCommand(
        ("quality",),
        "annotate documents with CCNet perplexity, heuristic and code rules, and a quality bucket",
        QualityOptions,
        quality,
        render_annotated,
    )
]
