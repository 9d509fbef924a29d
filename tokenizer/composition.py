"""The sample's composition report: documents and bytes per category and language, before and after.

Why: an up-sampled sample is only trustworthy when one can see what it holds; the report
travels with the sample into the tokenizer's card.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from corpusmill.curation.classify.labels import CODE
from corpusmill.tokenizer.sampling import GroupKey, GroupTally, SamplingPlan

COMPOSITION_FILE = "composition.json"


def _add(totals: dict[str, dict[str, int]], name: str, before: GroupTally, after: Mapping[str, int]) -> None:
    entry = totals.setdefault(
        name, {"docs_before": 0, "bytes_before": 0, "docs_after": 0, "copies_after": 0, "bytes_after": 0}
    )
    entry["docs_before"] += before.docs
    entry["bytes_before"] += before.bytes
    for field_name in ("docs", "copies", "bytes"):
        entry[f"{field_name}_after"] += after[field_name]


def composition_report(
    plan: SamplingPlan,
    before: Mapping[GroupKey, GroupTally],
    after: Mapping[GroupKey, Mapping[str, int]],
    rates: Mapping[GroupKey, float],
) -> dict[str, Any]:
    """``after`` holds, per group, distinct documents drawn, copies and bytes counting copies."""
    empty = {"docs": 0, "copies": 0, "bytes": 0}
    by_category: dict[str, dict[str, int]] = {}
    by_language: dict[str, dict[str, int]] = {}
    by_code_language: dict[str, dict[str, int]] = {}
    groups = []
    for key in sorted(before):
        category, language = key
        drawn = after.get(key, empty)
        _add(by_category, category, before[key], drawn)
        _add(by_code_language if category == CODE else by_language, language, before[key], drawn)
        groups.append(
            {
                "category": category,
                "language": language,
                "rate": rates[key],
                **asdict(before[key]),
                **{f"{k}_after": v for k, v in drawn.items()},
            }
        )
    total: dict[str, dict[str, int]] = {}
    for key in before:
        _add(total, "all", before[key], after.get(key, empty))
    return {
        "plan": plan.record(),
        "total": total.get("all", {}),
        "by_category": by_category,
        "by_language": by_language,
        "by_code_language": by_code_language,
        "groups": groups,
    }


def format_composition(report: Mapping[str, Any], limit: int = 12) -> str:
    """A short table for the terminal: the largest languages and every category."""
    lines = [f"{'group':<22}{'MB before':>11}{'MB after':>10}{'share after':>13}"]
    total_after = max(report["total"].get("bytes_after", 0), 1)

    def row(name: str, entry: Mapping[str, int]) -> str:
        return (
            f"{name:<22}{entry['bytes_before'] / 1e6:>11.2f}{entry['bytes_after'] / 1e6:>10.2f}"
            f"{entry['bytes_after'] / total_after:>13.1%}"
        )

    lines += [row(f"category {name}", entry) for name, entry in report["by_category"].items()]
    for title in ("by_language", "by_code_language"):
        ranked = sorted(report[title].items(), key=lambda item: -item[1]["bytes_after"])
        lines += [row(f"  {name}", entry) for name, entry in ranked[:limit]]
        if len(ranked) > limit:
            lines.append(f"  ... {len(ranked) - limit} more in {COMPOSITION_FILE}")
    return "\n".join(lines)
