"""The run report as one self-contained HTML page: inline CSS, inline SVG, the data embedded as JSON.

Nothing is fetched: no script, font, image or style sheet comes from elsewhere, so the
file can be mailed, archived or opened offline. Every section is always there; one whose
data the run did not produce says so, and which step would produce it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

from corpusmill.pipelines.console import duration
from corpusmill.pipelines.svg import (
    FULL,
    Bar,
    Cutoff,
    Segment,
    Series,
    columns,
    grouped_bars,
    histogram,
    line_chart,
    stacked_bars,
)  # fmt: skip

SECTIONS = (
    ("overview", "Overview"),
    ("funnel", "Funnel"),
    ("mix", "Language and category mix"),
    ("quality", "Quality"),
    ("near-duplicates", "Near-duplicates"),
    ("tokenizer", "Tokenizer"),
    ("blend", "Blend"),
    ("training", "Training"),
)
KEPT = "#2563eb"
REMOVED_COLORS = ("#f97316", "#ef4444", "#f59e0b", "#ec4899", "#b45309", "#e11d48")
REJECTED_COLORS = ("#7c3aed", "#64748b", "#a855f7", "#0f766e", "#475569", "#6d28d9", "#94a3b8", "#4338ca")
CATEGORY_COLORS = {"english": "#2563eb", "multilingual": "#059669", "code": "#d97706"}
BUCKET_COLORS = {"head": "#16a34a", "middle": "#eab308", "tail": "#dc2626",
                 "high": "#16a34a", "medium": "#eab308", "low": "#dc2626"}  # fmt: skip
SERIES_COLORS = ("#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed")
OTHER = "#9ca3af"
QUALITY = ("high", "medium", "low")
PPL = ("head", "middle", "tail")
TOP = 15
WARNINGS_SHOWN = 5  # per blend phase; the rest fold away

CSS = """
:root { --text:#1f2937; --muted:#6b7280; --line:#e5e7eb; --bg:#f6f7f9; --card:#fff; --accent:#2563eb; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--text); font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; }
header { background:#111827; color:#f9fafb; padding:28px 0 22px; }
header .wrap, main, nav .wrap { max-width:1120px; margin:0 auto; padding:0 24px; }
header h1 { margin:0 0 6px; font-size:24px; font-weight:650; letter-spacing:-0.01em; }
header p { margin:0; color:#9ca3af; }
header code { color:#e5e7eb; }
nav { position:sticky; top:0; z-index:2; background:rgba(255,255,255,.96); border-bottom:1px solid var(--line); }
nav .wrap { display:flex; gap:18px; overflow-x:auto; }
nav a { color:var(--muted); text-decoration:none; padding:10px 0; white-space:nowrap; font-weight:500; }
nav a:hover { color:var(--accent); }
section { background:var(--card); border:1px solid var(--line); border-radius:10px; margin:22px 0; padding:20px 24px 22px; }
section h2 { margin:0 0 4px; font-size:19px; }
section h3 { margin:20px 0 6px; font-size:15px; }
p.lead { margin:0 0 14px; color:var(--muted); }
p.absent { margin:8px 0 0; padding:12px 14px; background:#f9fafb; border:1px dashed #d1d5db; border-radius:8px; color:var(--muted); }
.badge { display:inline-block; padding:1px 9px; border-radius:999px; font-size:12px; font-weight:600; }
.badge.succeeded { background:#dcfce7; color:#166534; } .badge.failed { background:#fee2e2; color:#991b1b; }
.badge.running, .badge.pending { background:#fef9c3; color:#854d0e; } .badge.other { background:#f3f4f6; color:#374151; }
.kpis { display:grid; grid-template-columns:repeat(auto-fit,minmax(150px,1fr)); gap:12px; margin:6px 0 16px; }
.kpi { border:1px solid var(--line); border-radius:8px; padding:10px 14px; }
.kpi b { display:block; font-size:20px; font-weight:650; }
.kpi span { color:var(--muted); font-size:12px; }
figure { margin:10px 0 16px; }
figcaption { color:var(--muted); font-size:12px; margin-top:4px; }
svg.chart { width:100%; height:auto; display:block; }
.grid2 { display:grid; grid-template-columns:repeat(auto-fit,minmax(330px,1fr)); gap:8px 22px; }
.legend { display:flex; flex-wrap:wrap; gap:6px 16px; margin:4px 0 8px; font-size:12px; color:var(--muted); }
.legend i { display:inline-block; width:11px; height:11px; border-radius:3px; margin-right:5px; vertical-align:-1px; }
table { border-collapse:collapse; width:100%; font-size:13px; margin:6px 0 10px; font-variant-numeric:tabular-nums; }
th, td { text-align:left; padding:6px 9px; border-bottom:1px solid var(--line); vertical-align:top; }
th { color:var(--muted); font-weight:600; font-size:12px; background:#fafafa; }
td.n, th.n { text-align:right; white-space:nowrap; }
tr:hover td { background:#f9fafb; }
ul.warnings { margin:6px 0; padding-left:20px; color:#92400e; }
details summary { cursor:pointer; color:var(--accent); margin:4px 0; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:10px 0 30px; }
"""


# --- formatting ------------------------------------------------------------------------------------


def count(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def documents(value: float | None) -> str:
    """Exact below ten million, where every document still reads at a glance."""
    return count(value) if value is None or value < 1e7 else human(value)


def human(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1e15:
        return f"{value:.2g}"
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def size(nbytes: float | None) -> str:
    if nbytes is None:
        return "-"
    for scale, unit in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "KB")):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes:.0f} B"


def epochs(value: float) -> str:
    """Two significant digits, never in exponent form (137, not 1.4e+02)."""
    return f"{value:,.0f}" if value >= 10 else f"{value:.2g}"


def share(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def _e(value: Any) -> str:
    return escape(str(value))


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: set[int], table_id: str = "") -> str:
    attr = f' id="{table_id}"' if table_id else ""
    head = "".join(f'<th class="n">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f'<td class="n">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _legend(items: Iterable[tuple[str, str]]) -> str:
    return '<div class="legend">' + "".join(f'<span><i style="background:{c}"></i>{_e(n)}</span>' for n, c in items) + "</div>"


def _figure(svg: str, caption: str, figure_id: str) -> str:
    return f'<figure id="{figure_id}">{svg}<figcaption>{_e(caption)}</figcaption></figure>'


def _absent(text: str) -> str:
    return f'<p class="absent">{_e(text)}</p>'


def _kpis(items: Iterable[tuple[str, str]]) -> str:
    return '<div class="kpis">' + "".join(f'<div class="kpi"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for k, v in items) + "</div>"


def _badge(status: str | None) -> str:
    kind = status if status in ("succeeded", "failed", "running", "pending") else "other"
    return f'<span class="badge {kind}">{_e(status or "unknown")}</span>'


def _top(counts: dict[str, float], limit: int = TOP) -> list[tuple[str, float]]:
    """The largest entries, the rest folded into ``other``."""
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    head = ranked[:limit]
    rest = sum(value for _, value in ranked[limit:])
    return head + ([(f"{len(ranked) - limit} others", rest)] if rest else [])


# --- sections --------------------------------------------------------------------------------------


def overview(data: dict[str, Any]) -> str:
    run, funnel = data["run"], data["funnel"]
    items = [("steps", str(len(data["steps"]))), ("wall time", duration(run["elapsed_s"] or 0))]
    if funnel:
        first, last = funnel[0], funnel[-1]
        items += [
            ("documents in", documents(first["in"]["docs"])), ("documents out", documents(last["out"]["docs"])),
            ("text in", size(first["in"]["bytes"])), ("text out", size(last["out"]["bytes"])),
        ]  # fmt: skip
    tokens = (data.get("mix") or {}).get("tokens")
    if tokens:
        items.append(("tokens", human(sum(t["tokens"] for t in tokens["category"].values()))))
    rows = [
        (s["number"], s["name"], s["stage"], s["status"], duration(s["elapsed_s"]) if s["elapsed_s"] is not None else "-",
         s["units_run"] if s["units_run"] is not None else "-", s["out"] or "-")
        for s in data["steps"]
    ]  # fmt: skip
    return (
        '<p class="lead">Every step of the pipeline, in order, with what it did in this run.</p>'
        + _kpis(items)
        + _table(("#", "step", "stage", "status", "time", "units run", "output"), rows, {0, 4, 5}, "steps-table")
    )


def _reason_colors(funnel: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    colors: dict[tuple[str, str], str] = {}
    for kind, palette in (("removed", REMOVED_COLORS), ("rejected", REJECTED_COLORS)):
        reasons = sorted({reason for entry in funnel for reason in entry[kind]})
        for index, reason in enumerate(reasons):
            colors[(kind, reason)] = palette[index % len(palette)]
    return colors


def _funnel_chart(funnel: list[dict[str, Any]], unit: str, colors: dict[tuple[str, str], str]) -> str:
    fmt = count if unit == "docs" else size
    bars = []
    for entry in funnel:
        total = entry["in"][unit]
        segments = [Segment(entry["out"][unit], KEPT, f"{entry['step']}: kept {fmt(entry['out'][unit])}")]
        for kind in ("removed", "rejected"):
            for reason, tally in entry[kind].items():
                segments.append(Segment(tally[unit], colors[(kind, reason)], f"{entry['step']}: {kind} {reason} {fmt(tally[unit])}"))
        lost = total - entry["out"][unit]
        note = f"{fmt(entry['out'][unit])} kept" + (f", −{share(lost, total)}" if lost else "")
        bars.append(Bar(entry["step"], segments, note))
    return stacked_bars(bars, label_width=90, note_width=150, label=f"funnel of {unit}")


def funnel_section(data: dict[str, Any]) -> str:
    funnel = data["funnel"]
    if not funnel:
        return _absent("No document step (one that writes stats.json) ran: run a pipeline with `ingest` first.")
    colors = _reason_colors(funnel)
    legend = [("kept", KEPT)] + [(f"{kind}: {reason}", color) for (kind, reason), color in colors.items()]
    rows = []
    for entry in funnel:
        reasons = {kind: ", ".join(f"{r} {count(t['docs'])}" for r, t in entry[kind].items()) or "-" for kind in ("removed", "rejected")}
        if entry.get("where") and entry["removed"]:
            reasons["removed"] += f" (not: {entry['where']})"
        rows.append((
            entry["step"], entry["stage"], count(entry["in"]["docs"]), count(entry["out"]["docs"]),
            share(entry["out"]["docs"], entry["in"]["docs"]), size(entry["in"]["bytes"]), size(entry["out"]["bytes"]),
            reasons["removed"], reasons["rejected"],
        ))  # fmt: skip
    html = (
        '<p class="lead">Documents and bytes through each step that reads the one before it: what was kept, '
        "removed (a decision, with its reason) and rejected (bad input, with its reason). Every step accounts for "
        "every document it read: in = out + removed + rejected.</p>"
        + _legend(legend)
        + '<div class="grid2">'
        + _figure(_funnel_chart(funnel, "docs", colors), "Documents per step (bar length: documents read).", "funnel-docs")
        + _figure(_funnel_chart(funnel, "bytes", colors), "UTF-8 text bytes per step.", "funnel-bytes")
        + "</div>"
        + _table(("step", "stage", "docs in", "docs out", "kept", "bytes in", "bytes out", "removed", "rejected"),
                 rows, {2, 3, 4, 5, 6}, "funnel-table")  # fmt: skip
    )
    if data["side_steps"]:
        side = [(e["step"], e["stage"], count(e["in"]["docs"]), count(e["out"]["docs"]), size(e["out"]["bytes"]))
                for e in data["side_steps"]]  # fmt: skip
        html += "<h3>Steps beside the main line</h3>" + _table(
            ("step", "stage", "docs in", "docs out", "bytes out"), side, {2, 3, 4}, "side-steps-table"
        )
    return html


def _bars_of(counts: list[tuple[str, float]], color_of: Any, fmt: Any, total: float) -> list[Bar]:
    return [
        Bar(name, [Segment(value, color_of(name), f"{name}: {fmt(value)} ({share(value, total)})")], f"{fmt(value)} · {share(value, total)}")
        for name, value in counts
    ]


def mix_section(data: dict[str, Any]) -> str:
    mix = data.get("mix")
    if not mix:
        return _absent("No classified dataset and no tokenized shards in this run: run `classify` (and `tokenize`).")
    html = '<p class="lead">What the curated corpus is made of: categories, natural languages and programming languages.</p>'
    documents, tokens = mix.get("documents"), mix.get("tokens")
    figures = []
    if documents:
        total = sum(documents["category"].values())
        category = _bars_of(_top(documents["category"]), lambda n: CATEGORY_COLORS.get(n, OTHER), count, total)
        figures.append(_figure(stacked_bars(category, label="documents per category"),
                               f"Documents per category, in {documents['step']} ({count(total)} documents).", "mix-category-docs"))  # fmt: skip
    if tokens:
        total = sum(t["tokens"] for t in tokens["category"].values())
        values = {name: t["tokens"] for name, t in tokens["category"].items()}
        category = _bars_of(_top(values), lambda n: CATEGORY_COLORS.get(n, OTHER), human, total)
        figures.append(_figure(stacked_bars(category, label="tokens per category"),
                               f"Tokens per category, in {tokens['step']} ({human(total)} tokens).", "mix-category-tokens"))  # fmt: skip
    html += '<div class="grid2">' + "".join(figures) + "</div>"
    if documents:
        total_prose = sum(documents["lang"].values())
        langs = _bars_of(_top(documents["lang"]), lambda n: "#059669" if n != "en" else "#2563eb", count, total_prose)
        code_total = sum(documents["code_lang"].values())
        code = _bars_of(_top(documents["code_lang"]), lambda n: "#d97706", count, code_total)
        html += '<div class="grid2">' + _figure(stacked_bars(langs, label="documents per language"),
                                               "Prose documents per language (lang).", "mix-languages")  # fmt: skip
        html += (_figure(stacked_bars(code, label="documents per programming language"),
                         "Documents per programming language (code_lang).", "mix-code-languages")
                 if code else _absent("No code documents.")) + "</div>"  # fmt: skip
    if tokens:
        rows = [(name, human(t["tokens"]), size(t["bytes"]), count(t["documents"]),
                 f"{t['bytes'] / t['tokens']:.2f}" if t["tokens"] else "-") for name, t in
                [*tokens["language"].items(), *tokens["code_language"].items()]]  # fmt: skip
        table = _table(("language", "tokens", "text", "documents", "bytes/token"), rows, {1, 2, 3, 4}, "mix-tokens-table")
        html += f"<details><summary>Tokens per language and programming language ({len(rows)})</summary>{table}</details>"
    return html


def _log_tick(value: float) -> str:
    return human(10**value)


def quality_section(data: dict[str, Any]) -> str:
    quality = data.get("quality")
    if not quality:
        return _absent(
            "No quality step in this run (no dataset has a `ppl` column): run `lm train` and `quality` to see "
            "perplexity histograms per language with their bucket cut-offs and the quality-bucket mix."
        )
    html = (
        f'<p class="lead">Perplexity of each document under its language\'s KenLM model, in {_e(quality["step"])} '
        f"({count(quality['scored'])} of {count(quality['documents'])} documents scored). Bars are coloured by "
        "perplexity bucket; dashed lines are the cut-offs the stage applied (its cutoffs.json: below the first is "
        "head, at or above the second tail).</p>"
    )
    for model in quality["models"]:
        reference = ", ".join(Path(path).name for path in model["reference"])
        html += (f"<h3>Language model {_e(model['lang'])} ({_e(model['step'])})</h3>"
                 f'<p class="lead">A {model["order"]}-gram KenLM over {count(model["pieces"])} SentencePiece pieces, '
                 f"learned from the <code>{_e(model['lang'])}</code> rows of {_e(reference)}; its percentiles are those of "
                 f"{_e(model['percentiles_of'])}. Documents it learned from score lower than unseen ones.</p>")  # fmt: skip
        html += _kpis([
            ("documents learned", count(model["documents"])), ("text learned", size(model["bytes"])),
            ("held out", count(model["held_out_documents"])), ("p30 perplexity", human(model["p30"])),
            ("p60 perplexity", human(model["p60"])), ("model size", size(model["lm_bytes"])),
        ])  # fmt: skip
    html += _legend((b, BUCKET_COLORS[b]) for b in PPL)
    figures = []
    for entry in quality["languages"]:
        edges, cut = entry["log10_edges"], entry["cutoffs"]
        stacks = [(b, BUCKET_COLORS[b], entry["bucket_counts"][b]) for b in PPL] if entry["bucket_counts"] else [
            ("documents", "#6366f1", entry["counts"])]  # fmt: skip
        cutoffs = [Cutoff(math.log10(v), f"{'head <' if b == 'head' else 'tail ≥'} {human(v)}") for b, v in cut.items()]
        group = entry["group"]
        svg = histogram(edges, stacks, cutoffs=cutoffs, x_tick=_log_tick, x_title="perplexity (log scale)",
                        label=f"perplexity histogram {group}")  # fmt: skip
        origin = {"card": ", cut-offs from the LM card", "input": ", cut-offs from this input"}.get(entry["cutoffs_from"], "")
        what = f"code scored by the {entry['lang']} model" if entry["code"] else f"{entry['lang']} prose"
        figures.append(_figure(svg, f"{what}: {count(entry['documents'])} documents, median perplexity "
                                    f"{human(entry['median_ppl'])}{origin}", f"ppl-{group.replace(' ', '-')}"))  # fmt: skip
    html += '<div class="grid2">' + "".join(figures) + "</div>"
    if quality["quality_buckets"]:
        total = sum(quality["quality_buckets"].values())
        mixes = [("all", quality["quality_buckets"]), *quality["quality_buckets_by_category"].items()]
        mixes += [(e["group"], e.get("quality_buckets", {})) for e in quality["languages"]]
        mixes = [(name, mix) for i, (name, mix) in enumerate(mixes) if mix not in [m for _, m in mixes[:i]]]  # `en` = `english`
        bars = []
        for name, mix in mixes:
            documents_ = sum(mix.values())
            segments = [Segment(mix.get(b, 0) / max(documents_, 1), BUCKET_COLORS[b],
                                f"{name} {b}: {count(mix.get(b, 0))} ({share(mix.get(b, 0), documents_)})") for b in QUALITY]  # fmt: skip
            bars.append(Bar(name, segments, f"{count(documents_)} docs · {share(mix.get('high', 0), documents_)} high"))
        html += "<h3>Quality buckets</h3>" + _legend((b, BUCKET_COLORS[b]) for b in QUALITY)
        html += _figure(stacked_bars(bars, scale=1.0, width=FULL, label_width=110, note_width=190, label="quality bucket mix"),
                        "Share of documents per quality bucket: overall, per category, and per scored language.", "quality-buckets")  # fmt: skip
        html += _table(("bucket", "documents", "share"), [(b, count(quality["quality_buckets"].get(b, 0)),
                       share(quality["quality_buckets"].get(b, 0), total)) for b in QUALITY], {1, 2}, "quality-table")  # fmt: skip
    else:
        html += _absent("The scored dataset has no `quality_bucket` column.")
    if quality["reasons"]:
        reasons = quality["reasons"]
        bars = _bars_of(_top(reasons), lambda n: BUCKET_COLORS["low"], count, quality["documents"])
        table = _table(("reason", "documents"), [(r, count(n)) for r, n in reasons.items()], {1}, "quality-reasons")
        html += "<h3>Heuristic rules that fired</h3>" + _figure(
            stacked_bars(bars, width=FULL, label_width=300, note_width=130, label="quality reasons"),
            f"Documents per failed rule (a document may fail several; share of all {count(quality['documents'])}).",
            "quality-reasons-chart",
        ) + f"<details><summary>All {len(reasons)} rules</summary>{table}</details>"
    if quality["unscored"]:
        html += f'<p class="lead">Not scored (no model for the language): {_e(", ".join(f"{k} {count(v)}" for k, v in quality["unscored"].items()))}.</p>'
    return html


def _size_chart(sizes: dict[str, int], color: str, title: str, figure_id: str, caption: str) -> str:
    svg = columns(list(sizes), list(sizes.values()), color=color, fmt=count, x_title=title, y_title="clusters",
                  label=caption)  # fmt: skip
    return _figure(svg, caption, figure_id)


def duplicates_section(data: dict[str, Any]) -> str:
    duplicates = data.get("duplicates")
    if not duplicates:
        return _absent("No dedup step in this run: run `dedup exact` and `dedup fuzzy`.")
    html = '<p class="lead">How duplicated the corpus was: the size of each group of (near-)copies, of which one document is kept.</p>'
    html += '<div class="grid2">'
    if not duplicates["fuzzy"]:
        html += _absent("No `dedup fuzzy` step in this run.")
    for fuzzy in duplicates["fuzzy"]:
        counters, config = fuzzy["counters"], fuzzy["config"]
        html += f"<div><h3>Near-duplicate clusters ({_e(fuzzy['step'])})</h3>" + _kpis([
            ("clusters", count(fuzzy["clusters"])), ("documents in clusters", count(fuzzy["documents_in_clusters"])),
            ("removed", count(fuzzy["removed"])), ("candidate pairs", count(counters.get("pairs_examined"))),
            ("verified pairs", count(counters.get("pairs_verified"))),
            ("Jaccard threshold", str(config.get("threshold", "-"))),
        ])  # fmt: skip
        if fuzzy["sizes"]:
            html += _size_chart(fuzzy["sizes"], "#7c3aed", "cluster size (documents)", f"clusters-{fuzzy['step']}",
                                "Near-duplicate clusters by size: the kept document and its near-copies.")  # fmt: skip
        else:
            html += _absent("No near-duplicate pairs passed verification.")
        html += "</div>"
    for exact in duplicates["exact"]:
        html += f"<div><h3>Exact duplicate groups ({_e(exact['step'])})</h3>" + _kpis(
            [("groups", count(exact["groups"])), ("copies removed", count(exact["removed"]))]
        )
        if exact["sizes"]:
            html += _size_chart(exact["sizes"], "#f97316", "group size (identical documents)", f"exact-{exact['step']}",
                                "Groups of byte-identical documents by size.")  # fmt: skip
        html += "</div>"
    return html + "</div>"


def tokenizer_section(data: dict[str, Any]) -> str:
    tokenizer = data.get("tokenizer")
    if not tokenizer:
        return _absent("No tokenizer step in this run: run `tokenizer train` and `tokenizer eval`.")
    html = '<p class="lead">The tokenizer and how well it serves each language: bytes per token (higher compresses better) and tokens per word (fertility; lower is better).</p>'
    for card in tokenizer["cards"]:
        html += f"<h3>Model ({_e(card['step'])})</h3>" + _kpis([
            ("vocabulary", count(card["vocab_size"])), ("type", str(card["model_type"] or "-")),
            ("trained on", size(card["sample_bytes"])), ("sentences", count(card["sentences_loaded"])),
            ("training time", duration(card["wall_seconds"] or 0)), ("peak memory", size(card["peak_rss_bytes"])),
        ])  # fmt: skip
        if card["by_category"]:
            rows = [(c, count(v.get("docs_before")), count(v.get("copies_after")), size(v.get("bytes_before")), size(v.get("bytes_after")))
                    for c, v in card["by_category"].items()]  # fmt: skip
            html += _table(("category", "docs available", "copies sampled", "bytes available", "bytes sampled"), rows, {1, 2, 3, 4}, "tokenizer-sample")
    if not tokenizer["evaluations"]:
        html += _absent("No `tokenizer eval` step in this run.")
    for evaluation in tokenizer["evaluations"]:
        models = evaluation["models"]
        names = list(models)
        colors = {name: SERIES_COLORS[i % len(SERIES_COLORS)] for i, name in enumerate(names)}
        first = models[names[0]]
        html += f"<h3>Fertility ({_e(evaluation['step'])})</h3>" + _legend(colors.items())
        order = ("english", "multilingual", "code")
        categories = sorted(first["categories"], key=lambda c: (order.index(c) if c in order else len(order), c))
        languages = sorted(first["languages"], key=lambda lang: -first["languages"][lang]["bytes"])[:TOP]
        code_languages = sorted(first["code_languages"], key=lambda lang: -first["code_languages"][lang]["bytes"])[:TOP]
        figures = []
        for key, metric, title in (("categories", "tokens_per_word", "Tokens per word per category"),
                                   ("categories", "bytes_per_token", "Bytes per token per category"),
                                   ("languages", "tokens_per_word", "Tokens per word per language"),
                                   ("languages", "bytes_per_token", "Bytes per token per language"),
                                   ("code_languages", "bytes_per_token", "Bytes per token per programming language")):  # fmt: skip
            labels = {"categories": categories, "languages": languages, "code_languages": code_languages}[key]
            if not labels:
                continue
            series = [(name, colors[name], [models[name][key].get(label, {}).get(metric, 0.0) for label in labels]) for name in names]
            svg = grouped_bars(labels, series, fmt=lambda v: f"{v:.2f}", label=title)
            figures.append(_figure(svg, title + ".", f"fertility-{key}-{metric}".replace("_", "-")))
        html += '<div class="grid2">' + "".join(figures) + "</div>"
        rows = []
        for name in names:
            model = models[name]
            for category in categories:
                metrics = model["categories"][category]
                rows.append((name, category, count(metrics["docs"]), f"{metrics['bytes_per_token']:.3f}",
                             f"{metrics['tokens_per_word']:.3f}", f"{metrics['byte_fallback_rate']:.3%}"))  # fmt: skip
            total = model["total"]
            rows.append((name, "all", count(total["docs"]), f"{total['bytes_per_token']:.3f}", f"{total['tokens_per_word']:.3f}",
                         f"{total['byte_fallback_rate']:.3%}"))  # fmt: skip
        html += _table(("model", "category", "documents", "bytes/token", "tokens/word", "byte fallback"), rows, {2, 3, 4, 5}, "fertility-table")
        for name in names:
            model = models[name]
            html += (f'<p class="lead">{_e(name)}: {count(model["vocab_size"])} pieces, {model["vocab_used_share"]:.1%} used on '
                     f'this data; round-trip failures {count(model["total"]["roundtrip_failures"])} of {count(model["total"]["docs"])} documents.</p>')  # fmt: skip
    return html


def blend_section(data: dict[str, Any]) -> str:
    blends = data.get("blends")
    if not blends:
        return _absent("No `blend resolve` step in this run.")
    html = '<p class="lead">Each phase\'s resolved blend: the share of training sequences each component gets, the tokens that draws and how many times that repeats the component (epochs).</p>'
    for blend in blends:
        groups = blend["groups"]
        group_colors = {name: CATEGORY_COLORS.get(name, SERIES_COLORS[i % len(SERIES_COLORS)]) for i, name in enumerate(groups)}
        html += f"<h3>Phase {_e(blend['phase'])} of {_e(blend['spec'])} ({_e(blend['step'])})</h3>" + _kpis([
            ("tokens planned", human(blend["planned_tokens"])), ("components", count(len(blend["components"]))),
            ("groups", count(len(groups))), ("warnings", count(len(blend["warnings"] or []))),
        ])  # fmt: skip
        bar = Bar("share", [Segment(g["share"], group_colors[n], f"{n}: {g['share']:.1%} of sequences, {human(g['tokens_drawn'])} tokens")
                            for n, g in groups.items()], "")  # fmt: skip
        html += _legend((f"{n} {g['share']:.1%}", group_colors[n]) for n, g in groups.items()) + _figure(
            stacked_bars([bar], scale=1.0, width=FULL, label_width=60, note_width=10, label=f"group shares {blend['phase']}"),
            "Share of training sequences per group.", f"blend-groups-{blend['phase']}",
        )
        group_rows = [(n, f"{g['share']:.2%}", human(g["tokens"]), human(g["tokens_drawn"]),
                       f"{g['tokens_drawn'] / g['tokens']:.3g}" if g["tokens"] else "-") for n, g in groups.items()]  # fmt: skip
        html += _table(("group", "share", "tokens available", "tokens drawn", "epochs"), group_rows, {1, 2, 3, 4},
                       f"blend-groups-table-{blend['phase']}")  # fmt: skip
        top = blend["components"][:TOP]
        bars = [Bar(c["prefix"], [Segment(c["share"], group_colors[c["group"]], f"{c['prefix']}: {c['share']:.2%}, {c['epochs']:.3g} epochs")],
                    f"{c['share']:.1%} · {epochs(c['epochs'])} ep") for c in top]  # fmt: skip
        html += _figure(stacked_bars(bars, width=FULL, label_width=260, note_width=130, label=f"component shares {blend['phase']}"),
                        f"The {len(top)} largest components by share (of {len(blend['components'])}).", f"blend-components-{blend['phase']}")  # fmt: skip
        rows = [(c["prefix"], c["group"], human(c["tokens"]), f"{c['share']:.3%}", human(c["tokens_drawn"]), f"{c['epochs']:.3g}")
                for c in blend["components"]]  # fmt: skip
        table = _table(("component", "group", "tokens available", "share", "tokens drawn", "epochs"), rows, {2, 3, 4, 5},
                       f"blend-table-{blend['phase']}")  # fmt: skip
        html += f"<details><summary>All {len(rows)} components</summary>{table}</details>"
        if blend["not_drawn"]:
            html += "<p class=\"lead\">Not drawn: " + _e("; ".join(f"{e['prefix']} ({e['reason']})" for e in blend["not_drawn"])) + "</p>"
        if blend["warnings"] is None:
            html += _absent("This blend was resolved before `blend resolve` recorded its warnings in trainer.json; re-run it to see them.")
        elif blend["warnings"]:
            shown, rest = blend["warnings"][:WARNINGS_SHOWN], blend["warnings"][WARNINGS_SHOWN:]
            html += '<ul class="warnings">' + "".join(f"<li>{_e(w)}</li>" for w in shown) + "</ul>"
            if rest:
                html += (f"<details><summary>{len(rest)} more warnings</summary><ul class=\"warnings\">"
                         + "".join(f"<li>{_e(w)}</li>" for w in rest) + "</ul></details>")  # fmt: skip
        else:
            html += '<p class="lead">No warnings.</p>'
    return html


def training_section(data: dict[str, Any]) -> str:
    runs = data.get("training")
    if not runs:
        return _absent("No train step in this run (no metrics.jsonl): run `corpusmill train` on a resolved blend.")
    html = '<p class="lead">Training loss per step, one line per phase.</p>'
    for run in runs:
        series = [Series(phase, SERIES_COLORS[i % len(SERIES_COLORS)], [tuple(p) for p in points])
                  for i, (phase, points) in enumerate(run["phases"].items())]  # fmt: skip
        html += f"<h3>{_e(run['step'])}</h3>" + _kpis([
            ("steps", count(run["steps"])), ("first loss", f"{run['first_loss']:.3f}"), ("last loss", f"{run['last_loss']:.3f}"),
            ("tokens", human(run["tokens"])), ("tokens/s", human(run["tokens_per_s"])),
            ("MFU", f"{run['mfu']:.1%}" if run["mfu"] is not None else "-"),
        ])  # fmt: skip
        html += _legend((s.name, s.color) for s in series)
        html += _figure(line_chart(series, x_title="step", y_title="loss", y_fmt=lambda v: f"{v:.2f}", label="training loss"),
                        "Training loss (cross-entropy per token).", f"loss-{run['step']}")  # fmt: skip
    return html


RENDERERS = {
    "overview": overview,
    "funnel": funnel_section,
    "mix": mix_section,
    "quality": quality_section,
    "near-duplicates": duplicates_section,
    "tokenizer": tokenizer_section,
    "blend": blend_section,
    "training": training_section,
}


def render_html(data: dict[str, Any]) -> str:
    run = data["run"]
    profile = f", profile <code>{_e(run['profile'])}</code>" if run.get("profile") else ""
    sections = "".join(
        f'<section id="{key}"><h2>{_e(title)}</h2>{RENDERERS[key](data)}</section>' for key, title in SECTIONS
    )
    nav = "".join(f'<a href="#{key}">{_e(title)}</a>' for key, title in SECTIONS)
    embedded = json.dumps(data, sort_keys=True).replace("</", "<\\/")
    generated = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>corpusmill report: {_e(run['name'])}</title><style>{CSS}</style></head><body>"
        f'<header><div class="wrap"><h1>corpusmill run report: {_e(run["name"])}</h1>'
        f"<p>{_badge(run['status'])} &nbsp;pipeline <code>{_e(run['pipeline'])}</code>{profile} · output "
        f"<code>{_e(run['out'])}</code> · started {_e(run['started_at'])} · {_e(duration(run['elapsed_s'] or 0))}</p>"
        f'</div></header><nav><div class="wrap">{nav}</div></nav><main>{sections}</main>'
        f"<footer>Generated {generated} by <code>corpusmill report</code> from the run's stats.json, manifests and reports. "
        f"The numbers are embedded below as JSON (#report-data).</footer>"
        f'<script type="application/json" id="report-data">{embedded}</script>'
        "</body></html>\n"
    )
