"""`corpusmill report`: every number agrees with the stages' own files, and the page renders in Chromium.

One real run feeds it: the demo (`pipelines/nemotron4.yaml`, profile demo), which runs every stage of
the recipe, so every section (funnel, mix, quality, near-duplicates, tokenizer, both blend phases and
the training loss) is filled from what the stages wrote.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from corpusmill.curation.dataset import Dataset
from corpusmill.pipelines.report_html import SECTIONS, count, size
from corpusmill.pipelines.run_report import collect_report, write_report

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
    chain = ["ingest", "dedup_exact", "dedup_fuzzy", "classify", "quality", "select", "tokenize"]
    assert [entry["step"] for entry in data["funnel"]] == chain
    assert [entry["step"] for entry in data["side_steps"]] == ["lm_reference", "tokenizer_sample"]
    record = {step["name"]: Path(step["out"]) for step in json.loads((out / "pipeline_run.json").read_text())["steps"]}
    for entry in data["funnel"]:
        stats = _stats(record[entry["step"]])
        assert (entry["in"], entry["out"]) == (stats["in"], stats["out"])
        assert (entry["removed"], entry["rejected"]) == (stats["removed"], stats["rejected"])

    selected = Dataset.open(out / "selected").read_table(["category", "lang", "code_lang"])  # the curated corpus
    prose = selected.filter(pc.not_equal(selected["category"], "code"))
    code = selected.filter(pc.equal(selected["category"], "code"))

    def tally(column: pa.ChunkedArray) -> dict[str, int]:
        return {e["values"]: e["counts"] for e in pc.value_counts(column).to_pylist()}

    mix = data["mix"]
    assert mix["documents"]["step"] == "select"
    assert mix["documents"]["category"] == tally(selected["category"])
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

    assert [blend["phase"] for blend in data["blends"]] == ["pretrain", "continued"]
    for blend, directory in zip(data["blends"], ("blend", "blend_continued")):
        trainer = json.loads((out / directory / "trainer.json").read_text())
        assert blend["phase"] == trainer["phase"] and blend["planned_tokens"] == trainer["planned_tokens"]
        assert blend["warnings"] == trainer["warnings"]
        assert sorted((c["share"], c["epochs"], c["tokens"]) for c in blend["components"]) == sorted(
            (e["weight"], e["epochs"], e["tokens"]) for e in trainer["splits"]["train"]
        )
    assert data["blends"][0]["warnings"]  # the demo's tiny components are repeated past max_epochs

    page = read_page(write_report(out, out / "report.html").read_text())
    rows = page.tables["funnel-table"][1:]
    assert len(rows) == len(chain)
    for row, entry in zip(rows, data["funnel"]):
        stats = _stats(record[entry["step"]])
        assert row[:4] == [entry["step"], entry["stage"], count(stats["in"]["docs"]), count(stats["out"]["docs"])]
        assert row[5:7] == [size(stats["in"]["bytes"]), size(stats["out"]["bytes"])]
    assert page.tables["steps-table"][1][1] == "ingest" and len(page.tables["steps-table"]) == 1 + len(record)
    for blend in data["blends"]:
        blend_rows = {row[0]: row for row in page.tables[f"blend-table-{blend['phase']}"][1:]}
        top = blend["components"][0]
        assert blend_rows[top["prefix"]][3] == f"{top['share']:.3%}"


def test_quality_and_training_sections_come_from_their_columns_and_metrics(demo_run) -> None:
    out = demo_run.out
    data = collect_report(out)
    quality = data["quality"]
    table = Dataset.open(out / "quality").read_table(["lang", "category", "ppl", "ppl_bucket", "quality_bucket", "quality_reasons"])
    applied = json.loads((out / "quality" / "cutoffs.json").read_text())
    counters = _stats(out / "quality")["counters"]
    assert quality["step"] == "quality" and quality["documents"] == table.num_rows
    assert quality["scored"] == pc.sum(pc.is_finite(table["ppl"])).as_py() > 0
    groups = {entry["group"] for entry in quality["languages"]}
    assert "en" in groups  # the demo's one model: English (its prose; code it scored is drawn apart)
    for entry in quality["languages"]:
        mine = table.filter(pc.equal(table["lang"], entry["lang"]))
        mine = mine.filter(pc.equal(mine["category"], "code") if entry["code"] else pc.not_equal(mine["category"], "code"))
        mine = mine.filter(pc.is_finite(mine["ppl"]))
        assert sum(entry["counts"]) == entry["documents"] == mine.num_rows
        assert entry["cutoffs"] == {key: applied[entry["lang"]][key] for key in ("head", "tail")}
        for bucket in ("head", "middle", "tail"):
            inside = mine.filter(pc.equal(mine["ppl_bucket"], bucket))
            assert sum(entry["bucket_counts"][bucket]) == inside.num_rows
        lowest = min(pc.min(mine["ppl"]).as_py(), entry["cutoffs"]["head"])
        assert math.isclose(10 ** entry["log10_edges"][0], lowest, rel_tol=1e-6)
    buckets = {e["values"]: e["counts"] for e in pc.value_counts(table["quality_bucket"]).to_pylist()}
    assert quality["quality_buckets"] == buckets
    assert buckets == {key.split(".", 1)[1]: n for key, n in counters.items() if key.startswith("quality_bucket.")}
    assert sum(sum(tally.values()) for tally in quality["quality_buckets_by_category"].values()) == table.num_rows
    assert quality["reasons"] == dict(Counter(r for listed in table["quality_reasons"].to_pylist() for r in listed or []))
    assert quality["reasons"] == {key.split(".", 1)[1]: n for key, n in counters.items() if key.startswith("reason.")}

    card = json.loads((out / "lm_en" / "card.json").read_text())
    (model,) = quality["models"]
    reference = _stats(out / "lm_reference")["out"]["docs"]  # the English prose the model learned from or held out
    assert (model["lang"], model["reference"]) == ("en", [str(out / "lm_reference")])
    assert model["documents"] == card["corpus"]["documents"] and model["documents"] + model["held_out_documents"] == reference
    assert (model["p30"], model["p60"]) == (applied["en"]["head"], applied["en"]["tail"])  # the card's cut-offs, applied

    metrics = [json.loads(line) for line in (out / "train" / "metrics.jsonl").read_text().splitlines()]
    run = data["training"][0]
    assert run["steps"] == len(metrics) == 36
    assert run["last_loss"] == metrics[-1]["loss"] < metrics[0]["loss"]  # it learned something
    names = {phase["index"]: phase["name"] for phase in json.loads((out / "train" / "run.json").read_text())["phases"]}
    assert set(run["phases"]) == {"pretrain", "continued"} == {names[m["phase"]] for m in metrics}
    assert run["phases"]["continued"] == [[m["step"], m["loss"]] for m in metrics if names[m["phase"]] == "continued"]
    page = read_page(write_report(out, out / "report.html").read_text())
    drawn = {figure for figure, has_svg in page.figures.items() if has_svg}
    assert {f"ppl-{entry['group'].replace(' ', '-')}" for entry in quality["languages"]} <= drawn
    assert {"quality-buckets", "loss-train"} <= drawn


# --- the page in a browser -------------------------------------------------------------------------

FIGURES = {"funnel-docs", "funnel-bytes", "mix-category-docs", "mix-category-tokens", "mix-languages",
           "mix-code-languages", "ppl-en", "quality-buckets", "clusters-dedup_fuzzy", "exact-dedup_exact",
           "fertility-languages-tokens-per-word", "blend-groups-pretrain", "blend-components-pretrain",
           "blend-groups-continued", "blend-components-continued", "loss-train"}  # fmt: skip


def chromium() -> str:
    found = shutil.which("chromium")
    assert found, "chromium is not installed: `make test` installs it (apt-get install chromium)"
    return found


def render(report: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
               "--hide-scrollbars", *extra, report.as_uri()]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_the_report_renders_every_section_and_figure_without_errors(demo_run, tmp_path: Path) -> None:
    report = write_report(demo_run.out, tmp_path / "report.html")
    text = report.read_text()
    assert read_page(text).external == []  # nothing is fetched: no image, style sheet, script or font from elsewhere
    dumped = render(report, "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    assert re.findall(r".*:CONSOLE.*", dumped.stderr) == []  # the page logged nothing, errors included
    page = read_page(dumped.stdout)
    assert page.sections == [key for key, _ in SECTIONS]
    drawn = {figure for figure, has_svg in page.figures.items() if has_svg}
    assert FIGURES <= drawn, FIGURES - drawn
    assert {section for section, notes in page.absent.items() if notes} == set()  # every section is filled
    shot = tmp_path / "report.png"
    screenshot = render(report, f"--screenshot={shot}", "--window-size=1280,3000")
    assert screenshot.returncode == 0 and shot.stat().st_size > 50_000, screenshot.stderr[-2000:]
