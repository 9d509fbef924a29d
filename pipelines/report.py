"""Human-readable one-paragraph summaries of a stage's stats.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from corpusmill.curation.atomic import read_json
from corpusmill.curation.dataset import STATS_FILE


def _size(nbytes: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if nbytes < 1000 or unit == "TB":
            return f"{nbytes:,.0f} {unit}" if unit == "B" else f"{nbytes:,.1f} {unit}"
        nbytes /= 1000
    raise AssertionError


def _reasons(buckets: dict[str, Any]) -> str:
    return ", ".join(f"{reason} {tally['docs']:,}" for reason, tally in buckets.items()) or "none"


def summarize_stats(stats: dict[str, Any]) -> str:
    lines = [
        f"{stats['stage']}: {stats['in']['docs']:,} docs ({_size(stats['in']['bytes'])}) in -> "
        f"{stats['out']['docs']:,} docs ({_size(stats['out']['bytes'])}) out",
        f"  removed: {_reasons(stats['removed'])}",
        f"  rejected: {_reasons(stats['rejected'])}",
    ]
    if stats.get("counters"):
        lines.append("  " + ", ".join(f"{k} {v:,}" for k, v in stats["counters"].items()))
    return "\n".join(lines)


def summarize_output(out_dir: str | Path) -> str:
    return summarize_stats(read_json(Path(out_dir) / STATS_FILE))
