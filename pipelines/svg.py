"""Hand-written SVG charts for the run report: no library, no script, nothing fetched.

Every chart is a function of plain numbers returning one ``<svg>`` element, sized by a
``viewBox`` so it scales with the page. Hovering a bar shows its exact value (an SVG
``<title>``). The report (``pipelines.run_report``) decides what to draw; this module only
knows how.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

Format = Callable[[float], str]

TEXT = "#1f2937"
MUTED = "#6b7280"
GRID = "#e5e7eb"
HALF = 520  # viewBox width of a chart drawn in half the page: its text then reads at about 12 px
FULL = 1040
FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'


@dataclass(frozen=True)
class Segment:
    """One coloured piece of a bar; ``title`` is what hovering it says."""

    value: float
    color: str
    title: str


@dataclass(frozen=True)
class Bar:
    label: str
    segments: Sequence[Segment]
    note: str = ""  # written after the bar's end


def _svg(width: float, height: float, body: list[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="{escape(label)}" class="chart" {FONT} font-size="12">' + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, text: str, *, anchor: str = "start", color: str = TEXT, size: int = 12,
          weight: str = "normal", baseline: str = "middle") -> str:  # fmt: skip
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" dominant-baseline="{baseline}" fill="{color}" '
        f'font-size="{size}" font-weight="{weight}">{escape(text)}</text>'
    )


def _rect(x: float, y: float, w: float, h: float, color: str, title: str, radius: float = 0) -> str:
    return (
        f'<rect x="{x:.2f}" y="{y:.2f}" width="{max(w, 0):.2f}" height="{h:.2f}" rx="{radius}" fill="{color}">'
        f"<title>{escape(title)}</title></rect>"
    )


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2, 2.5 or 5 times a power of ten apart)."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        if value >= low - step * 1e-9:
            ticks.append(round(value, 10))
        value += step
    return ticks


def stacked_bars(bars: Sequence[Bar], *, scale: float | None = None, width: int = HALF, label_width: int = 110,
                 note_width: int = 110, row_height: int = 24, label: str = "bar chart") -> str:  # fmt: skip
    """Horizontal bars, one per row, each a stack of segments; all rows share one scale."""
    plot = width - label_width - note_width
    top = max(sum(s.value for s in bar.segments) for bar in bars) if bars else 0
    scale = scale or top or 1
    body = []
    for row, bar in enumerate(bars):
        y = row * row_height + 4
        body.append(_text(label_width - 10, y + row_height / 2 - 2, bar.label, anchor="end"))
        body.append(_rect(label_width, y, plot, row_height - 8, "#f3f4f6", bar.label, 2))
        x = float(label_width)
        for segment in bar.segments:
            w = plot * segment.value / scale
            body.append(_rect(x, y, w, row_height - 8, segment.color, segment.title))
            x += w
        body.append(_text(x + 6, y + row_height / 2 - 2, bar.note, color=MUTED, size=11))
    return _svg(width, len(bars) * row_height + 6, body, label)


def grouped_bars(labels: Sequence[str], series: Sequence[tuple[str, str, Sequence[float]]], *, fmt: Format,
                 width: int = HALF, label_width: int = 110, label: str = "bar chart") -> str:  # fmt: skip
    """Horizontal bars grouped per label, one bar per series (name, colour, values); a value axis below."""
    bar_height, gap = 15, 8
    group_height = bar_height * len(series) + gap
    plot = width - label_width - 70
    top = max((v for _, _, values in series for v in values), default=0) or 1
    ticks = nice_ticks(0, top)
    top = max(top, ticks[-1])
    height = len(labels) * group_height + 28
    body = []
    for tick in ticks:
        x = label_width + plot * tick / top
        body.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 24}" stroke="{GRID}"/>')
        body.append(_text(x, height - 10, fmt(tick), anchor="middle", color=MUTED, size=11))
    for row, name in enumerate(labels):
        y = row * group_height + gap / 2
        body.append(_text(label_width - 10, y + bar_height * len(series) / 2, name, anchor="end"))
        for index, (series_name, color, values) in enumerate(series):
            value = values[row]
            w = plot * value / top
            by = y + index * bar_height
            body.append(_rect(label_width, by + 1, w, bar_height - 2, color, f"{name}, {series_name}: {fmt(value)}", 2))
            body.append(_text(label_width + w + 5, by + bar_height / 2, fmt(value), color=MUTED, size=10))
    return _svg(width, height, body, label)


def columns(labels: Sequence[str], values: Sequence[float], *, color: str, fmt: Format, x_title: str,
            y_title: str, width: int = HALF, height: int = 230, label: str = "column chart") -> str:  # fmt: skip
    """Vertical bars over categories (cluster sizes, ...), each labelled with its value."""
    left, bottom, top_margin = 56, 44, 16
    plot_w, plot_h = width - left - 16, height - bottom - top_margin
    top = max(values, default=0) or 1
    ticks = nice_ticks(0, top)
    top = max(top, ticks[-1])
    body = []
    for tick in ticks:
        y = top_margin + plot_h * (1 - tick / top)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 16}" y2="{y:.1f}" stroke="{GRID}"/>')
        body.append(_text(left - 6, y, fmt(tick), anchor="end", color=MUTED, size=11))
    slot = plot_w / max(len(values), 1)
    for index, (name, value) in enumerate(zip(labels, values)):
        h = plot_h * value / top
        x = left + index * slot + slot * 0.15
        body.append(_rect(x, top_margin + plot_h - h, slot * 0.7, h, color, f"{x_title} {name}: {fmt(value)}", 2))
        body.append(_text(x + slot * 0.35, top_margin + plot_h - h - 8, fmt(value), anchor="middle", size=11))
        body.append(_text(x + slot * 0.35, top_margin + plot_h + 14, name, anchor="middle", color=MUTED, size=11))
    body.append(_text(left + plot_w / 2, height - 8, x_title, anchor="middle", color=MUTED, size=11))
    body.append(
        f'<text transform="translate(14 {top_margin + plot_h / 2:.0f}) rotate(-90)" text-anchor="middle" '
        f'fill="{MUTED}" font-size="11">{escape(y_title)}</text>'
    )
    return _svg(width, height, body, label)


@dataclass(frozen=True)
class Cutoff:
    value: float  # on the histogram's x axis
    label: str


def histogram(edges: Sequence[float], stacks: Sequence[tuple[str, str, Sequence[int]]], *, cutoffs: Sequence[Cutoff],
              x_tick: Format, x_title: str, width: int = HALF, height: int = 240,
              label: str = "histogram") -> str:  # fmt: skip
    """Documents per bin (``edges`` has one more entry than each count list), stacked by group (name, colour,
    counts), with dashed cut-off lines."""
    left, bottom, top_margin, right = 40, 40, 34, 10
    plot_w, plot_h = width - left - right, height - bottom - top_margin
    low, high = edges[0], edges[-1]
    span = (high - low) or 1
    totals = [sum(counts[i] for _, _, counts in stacks) for i in range(len(edges) - 1)]
    top = max(totals, default=0) or 1

    def x_of(value: float) -> float:
        return left + plot_w * (value - low) / span

    body = [f'<line x1="{left}" y1="{top_margin + plot_h}" x2="{width - right}" y2="{top_margin + plot_h}" stroke="{GRID}"/>']
    for tick in nice_ticks(0, top, 3):
        y = top_margin + plot_h * (1 - tick / top)
        if tick <= top:
            body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{GRID}"/>')
            body.append(_text(left - 5, y, f"{tick:g}", anchor="end", color=MUTED, size=10))
    for index, (start, end) in enumerate(zip(edges, edges[1:])):
        base = top_margin + plot_h
        for name, color, counts in stacks:
            if counts[index]:
                h = plot_h * counts[index] / top
                title = f"{x_tick(start)} – {x_tick(end)}: {counts[index]:,} {name}"
                body.append(_rect(x_of(start) + 0.5, base - h, x_of(end) - x_of(start) - 1, h, color, title))
                base -= h
    for tick in nice_ticks(low, high, 4):
        body.append(_text(x_of(tick), top_margin + plot_h + 13, x_tick(tick), anchor="middle", color=MUTED, size=10))
    for index, cutoff in enumerate(sorted(cutoffs, key=lambda c: c.value)):
        x = x_of(cutoff.value)
        label_y = top_margin - 22 + 12 * (index % 2)  # staggered, so close cut-offs keep readable labels
        body.append(
            f'<line x1="{x:.1f}" y1="{label_y + 4}" x2="{x:.1f}" y2="{top_margin + plot_h}" stroke="{TEXT}" '
            f'stroke-dasharray="4 3" stroke-width="1.2"><title>{escape(cutoff.label)}</title></line>'
        )
        anchor = "end" if x > width - 60 else "start" if x < left + 40 else "middle"
        body.append(_text(x, label_y, cutoff.label, anchor=anchor, size=10))
    body.append(_text(left + plot_w / 2, height - 6, x_title, anchor="middle", color=MUTED, size=11))
    return _svg(width, height, body, label)


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    points: Sequence[tuple[float, float]]


def line_chart(series: Sequence[Series], *, x_title: str, y_title: str, y_fmt: Format, width: int = FULL,
               height: int = 320, label: str = "line chart") -> str:  # fmt: skip
    """Lines over a shared x axis (training steps), one per series (a training phase)."""
    left, bottom, top_margin, right = 60, 44, 14, 20
    plot_w, plot_h = width - left - right, height - bottom - top_margin
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points]
    x_low, x_high = min(xs), max(xs)
    y_ticks = nice_ticks(min(ys), max(ys), 5)
    y_low, y_high = min(min(ys), y_ticks[0]), max(max(ys), y_ticks[-1])
    x_span, y_span = (x_high - x_low) or 1, (y_high - y_low) or 1

    def at(x: float, y: float) -> tuple[float, float]:
        return left + plot_w * (x - x_low) / x_span, top_margin + plot_h * (1 - (y - y_low) / y_span)

    body = []
    for tick in y_ticks:
        _, y = at(x_low, tick)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{GRID}"/>')
        body.append(_text(left - 6, y, y_fmt(tick), anchor="end", color=MUTED, size=11))
    for tick in nice_ticks(x_low, x_high, 6):
        x, _ = at(tick, y_low)
        body.append(_text(x, top_margin + plot_h + 14, f"{tick:g}", anchor="middle", color=MUTED, size=11))
    for line in series:
        path = " ".join(f"{'M' if i == 0 else 'L'}{px:.1f},{py:.1f}" for i, (px, py) in enumerate(at(x, y) for x, y in line.points))
        body.append(f'<path d="{path}" fill="none" stroke="{line.color}" stroke-width="2" stroke-linejoin="round">'
                    f"<title>{escape(line.name)}</title></path>")  # fmt: skip
        if len(line.points) <= 60:
            for x, y in line.points:
                px, py = at(x, y)
                body.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{line.color}">'
                            f"<title>{escape(line.name)} step {x:g}: {y_fmt(y)}</title></circle>")  # fmt: skip
    body.append(_text(left + plot_w / 2, height - 8, x_title, anchor="middle", color=MUTED, size=11))
    body.append(
        f'<text transform="translate(14 {top_margin + plot_h / 2:.0f}) rotate(-90)" text-anchor="middle" '
        f'fill="{MUTED}" font-size="11">{escape(y_title)}</text>'
    )
    return _svg(width, height, body, label)
