"""`corpusmill report`: every number agrees with the stages' own files, and the page renders in Chromium.

Two real runs feed it: the demo (funnel, mix, duplicates, tokenizer, blend), and a small run whose
last two steps stand in for the quality and training stages of other branches, with the same
columns and files they write (``ppl``, ``ppl_bucket``, ``quality_bucket``, ``quality_reasons`` and
``cutoffs.json``; ``metrics.jsonl`` with step, phase and loss), computed for real: a compression perplexity per
document and an online byte-bigram model's loss.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from corpusmill.curation.command import StageCommand
from corpusmill.curation.dataset import Dataset
from corpusmill.curation.executor import Executor, SerialExecutor
from corpusmill.curation.options import option
from corpusmill.curation.shard_map import BatchFn, map_dataset
from corpusmill.curation.unit_outputs import BatchOutcome
from corpusmill.pipelines import cli
from corpusmill.pipelines.demo_corpus import assemble_demo_inputs
from corpusmill.pipelines.pipeline import load_pipeline, plan_pipeline
from corpusmill.pipelines.report_html import SECTIONS, count, size
from corpusmill.pipelines.run_report import collect_report, write_report
from corpusmill.pipelines.runner import run_plan

# --- stand-ins for the quality and train stages ----------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ScoreOptions:
    input: str = option(positional=True, help="classified dataset")
    out: str = option(help="output dataset")


def compression_perplexity(text: str) -> float:
    """2^(3 x compressed bits per character): a real, if crude, perplexity (repetitive text scores low).

    Tiny texts compress to more than they are; the cap keeps them finite in float32.
    """
    return float(2 ** min(3 * 8 * len(zlib.compress(text.encode(), 9)) / max(len(text), 1), 100))


@dataclass(frozen=True)
class _Score:
    cutoffs: tuple[tuple[str, float, float], ...]  # per language: the 30th and 60th percentile (CCNet's buckets)

    def __call__(self) -> BatchFn:
        cutoffs = {lang: (low, high) for lang, low, high in self.cutoffs}

        def score(table: pa.Table) -> BatchOutcome:
            texts, langs = table["text"].to_pylist(), table["lang"].to_pylist()
            ppl = [compression_perplexity(t) for t in texts]
            bucket = ["head" if p < cutoffs[lang][0] else "middle" if p < cutoffs[lang][1] else "tail"
                      for p, lang in zip(np.float32(ppl).astype(float), langs)]  # fmt: skip
            reasons = [(["short_doc"] if len(t.split()) < 80 else []) + (["long_line"] if max(map(len, t.splitlines() or [""])) > 300 else [])
                       for t in texts]  # fmt: skip
            quality = ["high" if b == "head" and not r else "low" if b == "tail" or r else "medium" for b, r in zip(bucket, reasons)]
            columns = {"ppl": pa.array(ppl, pa.float32()), "ppl_bucket": pa.array(bucket, pa.string()),
                       "quality_bucket": pa.array(quality), "quality_reasons": pa.array(reasons, pa.list_(pa.string()))}  # fmt: skip
            for name, column in columns.items():
                table = table.append_column(name, column)
            return BatchOutcome(kept=table)

        return score


def score(options: ScoreOptions, *, executor: Executor, overwrite: bool = False) -> Any:
    rows = Dataset.open(options.input).read_table(["lang", "text"]).to_pydict()
    by_lang: dict[str, list[float]] = {}
    for lang, text in zip(rows["lang"], rows["text"]):
        by_lang.setdefault(lang, []).append(float(np.float32(compression_perplexity(text))))
    cutoffs = tuple((lang, *map(float, np.percentile(values, [30, 60]))) for lang, values in sorted(by_lang.items()))
    manifest = map_dataset(options.input, options.out, "score", {}, _Score(cutoffs), executor=executor, overwrite=overwrite)
    applied = {lang: {"head": head, "tail": tail, "source": "input", "documents": len(by_lang[lang])}
               for lang, head, tail in cutoffs}  # fmt: skip
    (Path(options.out) / "cutoffs.json").write_text(json.dumps(applied))  # as `corpusmill quality` records them
    return manifest


@dataclass(frozen=True, kw_only=True)
class TrainOptions:
    input: str = option(positional=True, help="dataset to learn")
    out: str = option(help="run directory (metrics.jsonl)")
    steps: int = option(40, help="steps")


def train(options: TrainOptions, *, executor: Executor, overwrite: bool = False) -> None:
    """Learn byte bigrams online; each step's loss is the cross-entropy of its bytes before learning them."""
    texts = Dataset.open(options.input).read_table(["text"])["text"].to_pylist()
    data = np.frombuffer("\n".join(texts).encode(), dtype=np.uint8).astype(np.int64)
    counts = np.ones((256, 256))
    per_step = len(data) // options.steps
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "metrics.jsonl", "w") as metrics:
        for step in range(options.steps):
            chunk = data[step * per_step : (step + 1) * per_step + 1]
            before, after = chunk[:-1], chunk[1:]
            loss = float(-np.log(counts[before, after] / counts[before].sum(axis=1)).mean())
            np.add.at(counts, (before, after), 1)
            phase = "pretrain" if step < options.steps * 3 // 4 else "continued"
            line = {"step": step + 1, "phase": phase, "loss": loss, "lr": 1e-3, "tokens": (step + 1) * per_step,
                    "tokens_per_s": 1e5, "mfu": 0.4, "max_memory_bytes": 0}  # fmt: skip
            metrics.write(json.dumps(line) + "\n")


STAND_INS = [StageCommand(("score",), "stand-in for quality", ScoreOptions, score),
             StageCommand(("train",), "stand-in for train", TrainOptions, train)]  # fmt: skip
SCORED_PIPELINE = """\
name: scored
variables: {inputs: null}
steps:
  - {stage: ingest, inputs: "{inputs}", out: "{out}/ingested"}
  - {stage: classify, input: "{out}/ingested", out: "{out}/classified"}
  - {stage: score, input: "{out}/classified", out: "{out}/scored"}
  - {stage: train, input: "{out}/scored", out: "{out}/train"}
"""


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("scored")
    demo_inputs = assemble_demo_inputs(root / "raw", max_docs_per_kind=60)
    inputs = [f"{path}={source}" for path, source in demo_inputs.ingest_inputs]
    (root / "scored.yaml").write_text(SCORED_PIPELINE)
    with pytest.MonkeyPatch.context() as patch:
        known = cli.commands()
        patch.setattr(cli, "commands", lambda: [*known, *STAND_INS])
        plan = plan_pipeline(load_pipeline(root / "scored.yaml"), out=str(root / "run"), variables={"inputs": inputs})
        run_plan(plan, SerialExecutor())
    yield root / "run"


# --- reading the page ------------------------------------------------------------------------------


class _Page(HTMLParser):
    """Tables by id (rows of cell texts), figure ids with whether they hold an svg, section ids, absent notes."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.figures: dict[str, bool] = {}
        self.sections: list[str] = []
        self.absent: dict[str, int] = Counter()
        self.external: list[str] = []
        self._table = self._figure = self._section = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name in ("src", "href"):
            if (attributes.get(name) or "").startswith(("http:", "https:", "//")):
                self.external.append(attributes[name])
        if tag in ("img", "link", "iframe") or (tag == "script" and attributes.get("type") != "application/json"):
            self.external.append(tag)
        if tag == "section":
            self._section = attributes["id"]
            self.sections.append(self._section)
        elif tag == "table" and attributes.get("id"):
            self._table = attributes["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
        elif tag == "figure":
            self._figure = attributes["id"]
            self.figures[self._figure] = False
        elif tag == "svg" and self._figure:
            self.figures[self._figure] = True
        elif tag == "p" and attributes.get("class") == "absent":
            self.absent[self._section] += 1

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "figure":
            self._figure = None


def read_page(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def _stats(step_dir: Path) -> dict[str, Any]:
    return json.loads((step_dir / "stats.json").read_text())


# --- the numbers -----------------------------------------------------------------------------------


def test_demo_report_numbers_are_the_stages_numbers(demo_run) -> None:
    out = demo_run.out
    data = collect_report(out)
    assert [entry["step"] for entry in data["funnel"]] == ["ingest", "dedup_exact", "dedup_fuzzy", "classify", "tokenize"]
    assert [entry["step"] for entry in data["side_steps"]] == ["tokenizer_sample"]
    record = {step["name"]: Path(step["out"]) for step in json.loads((out / "pipeline_run.json").read_text())["steps"]}
    for entry in data["funnel"]:
        stats = _stats(record[entry["step"]])
        assert (entry["in"], entry["out"]) == (stats["in"], stats["out"])
        assert (entry["removed"], entry["rejected"]) == (stats["removed"], stats["rejected"])

    classified = Dataset.open(out / "classified").read_table(["category", "lang", "code_lang"])
    prose = classified.filter(pc.not_equal(classified["category"], "code"))
    code = classified.filter(pc.equal(classified["category"], "code"))

    def tally(column: pa.ChunkedArray) -> dict[str, int]:
        return {e["values"]: e["counts"] for e in pc.value_counts(column).to_pylist()}

    mix = data["mix"]
    assert mix["documents"]["category"] == tally(classified["category"])
    assert mix["documents"]["lang"] == tally(prose["lang"]) and mix["documents"]["code_lang"] == tally(code["code_lang"])
    tokenized = json.loads((out / "tokenized" / "tokenized.json").read_text())
    by_category = Counter()
    for prefix in tokenized["prefixes"]:
        by_category[prefix["keys"]["category"]] += prefix["tokens"]
    assert {name: t["tokens"] for name, t in mix["tokens"]["category"].items()} == dict(by_category)

    fuzzy_stats, exact_stats = _stats(out / "dedup_fuzzy"), _stats(out / "dedup_exact")
    fuzzy, exact = data["duplicates"]["fuzzy"][0], data["duplicates"]["exact"][0]
    assert fuzzy["clusters"] == fuzzy_stats["counters"]["components"] > 0
    assert fuzzy["documents_in_clusters"] == fuzzy_stats["counters"]["documents_in_components"]
    assert fuzzy["removed"] == fuzzy_stats["removed"]["near_duplicate"]["docs"] == fuzzy["documents_in_clusters"] - fuzzy["clusters"]
    assert exact["removed"] == exact_stats["removed"]["exact_duplicate"]["docs"]
    assert exact["groups"] == exact_stats["counters"]["duplicate_groups"]
    assert sum(int(s) * n for s, n in exact["sizes"].items()) == exact["removed"] + exact["groups"]

    evaluation = json.loads((out / "tokenizer_eval" / "report.json").read_text())["models"]["tokenizer"]
    categories = data["tokenizer"]["evaluations"][0]["models"]["tokenizer"]["categories"]
    english = evaluation["languages"]["en"]
    assert categories["english"]["bytes_per_token"] == english["bytes"] / english["tokens"]
    code_tokens = sum(m["tokens"] for m in evaluation["code_languages"].values())
    assert categories["code"]["tokens"] == code_tokens
    assert sum(c["docs"] for c in categories.values()) == evaluation["total"]["docs"]
    assert data["tokenizer"]["cards"][0]["vocab_size"] == json.loads((out / "tokenizer" / "card.json").read_text())["settings"]["vocab_size"]

    trainer = json.loads((out / "blend" / "trainer.json").read_text())
    blend = data["blends"][0]
    assert blend["phase"] == trainer["phase"] and blend["planned_tokens"] == trainer["planned_tokens"]
    assert blend["warnings"] == trainer["warnings"] and blend["warnings"]  # the demo's tiny components warn
    assert sorted((c["share"], c["epochs"], c["tokens"]) for c in blend["components"]) == sorted(
        (e["weight"], e["epochs"], e["tokens"]) for e in trainer["splits"]["train"]
    )

    page = read_page(write_report(out, out / "report.html").read_text())
    rows = page.tables["funnel-table"][1:]
    for row, entry in zip(rows, data["funnel"]):
        stats = _stats(record[entry["step"]])
        assert row[:4] == [entry["step"], entry["stage"], count(stats["in"]["docs"]), count(stats["out"]["docs"])]
        assert row[5:7] == [size(stats["in"]["bytes"]), size(stats["out"]["bytes"])]
    assert page.tables["steps-table"][1][1] == "ingest" and len(page.tables["steps-table"]) == 1 + len(record)
    blend_rows = {row[0]: row for row in page.tables["blend-table-pretrain"][1:]}
    top = blend["components"][0]
    assert blend_rows[top["prefix"]][3] == f"{top['share']:.3%}"


def test_quality_and_training_sections_come_from_their_columns_and_metrics(scored_run: Path) -> None:
    data = collect_report(scored_run)
    quality = data["quality"]
    table = Dataset.open(scored_run / "scored").read_table(["lang", "ppl", "ppl_bucket", "quality_bucket", "quality_reasons"])
    applied = json.loads((scored_run / "scored" / "cutoffs.json").read_text())
    assert quality["step"] == "score" and quality["documents"] == table.num_rows
    assert len(quality["languages"]) >= 3
    for entry in quality["languages"]:
        mine = table.filter(pc.equal(table["lang"], entry["lang"]))
        assert sum(entry["counts"]) == entry["documents"] == mine.num_rows
        assert entry["cutoffs"] == {key: applied[entry["lang"]][key] for key in ("head", "tail")}
        for bucket in ("head", "middle", "tail"):
            inside = mine.filter(pc.equal(mine["ppl_bucket"], bucket))
            assert sum(entry["bucket_counts"][bucket]) == inside.num_rows
        assert np.isclose(10 ** entry["log10_edges"][0], min(pc.min(mine["ppl"]).as_py(), entry["cutoffs"]["head"]), rtol=1e-6)
    assert quality["quality_buckets"] == {e["values"]: e["counts"] for e in pc.value_counts(table["quality_bucket"]).to_pylist()}
    assert quality["reasons"] == dict(Counter(r for listed in table["quality_reasons"].to_pylist() for r in listed))

    metrics = [json.loads(line) for line in (scored_run / "train" / "metrics.jsonl").read_text().splitlines()]
    run = data["training"][0]
    assert run["steps"] == len(metrics) and run["last_loss"] == metrics[-1]["loss"] < metrics[0]["loss"]
    assert run["phases"]["continued"] == [[m["step"], m["loss"]] for m in metrics if m["phase"] == "continued"]
    page = read_page(write_report(scored_run, scored_run / "report.html").read_text())
    assert {f"ppl-{entry['lang']}" for entry in quality["languages"]} <= {f for f, has_svg in page.figures.items() if has_svg}
    assert page.figures["quality-buckets"] and page.figures["loss-train"]


# --- the page in a browser -------------------------------------------------------------------------

DEMO_FIGURES = {"funnel-docs", "funnel-bytes", "mix-category-docs", "mix-category-tokens", "mix-languages",
                "mix-code-languages", "clusters-dedup_fuzzy", "exact-dedup_exact", "fertility-languages-tokens-per-word",
                "blend-groups-pretrain", "blend-components-pretrain"}  # fmt: skip
SCORED_FIGURES = {"funnel-docs", "mix-category-docs", "quality-buckets", "loss-train"}


def chromium() -> str:
    found = shutil.which("chromium")
    assert found, "chromium is not installed: `make test` installs it (apt-get install chromium)"
    return found


def render(report: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
               "--hide-scrollbars", *extra, report.as_uri()]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("which", "figures", "absent"),
    [("demo", DEMO_FIGURES, {"quality", "training"}), ("scored", SCORED_FIGURES, {"near-duplicates", "tokenizer", "blend"})],
)
def test_the_report_renders_every_section_and_figure_without_errors(
    which: str, figures: set[str], absent: set[str], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    run_dir = request.getfixturevalue("demo_run").out if which == "demo" else request.getfixturevalue("scored_run")
    report = write_report(run_dir, tmp_path / "report.html")
    text = report.read_text()
    assert read_page(text).external == []  # nothing is fetched: no image, style sheet, script or font from elsewhere
    dumped = render(report, "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    assert re.findall(r".*:CONSOLE.*", dumped.stderr) == []  # the page logged nothing, errors included
    page = read_page(dumped.stdout)
    assert page.sections == [key for key, _ in SECTIONS]
    drawn = {figure for figure, has_svg in page.figures.items() if has_svg}
    assert figures <= drawn, figures - drawn
    assert {section for section, notes in page.absent.items() if notes} == absent  # and every other one is filled
    shot = tmp_path / "report.png"
    screenshot = render(report, f"--screenshot={shot}", "--window-size=1280,3000")
    assert screenshot.returncode == 0 and shot.stat().st_size > 50_000, screenshot.stderr[-2000:]
