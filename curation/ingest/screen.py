"""Vectorised screening of candidate documents: binary, blank and oversized text.

Readers produce a table of candidates (``id``, ``text``, ``source``, metadata, and
the private ``_location``); ``screen_documents`` splits it into documents and
rejects with a reason, so every reader applies the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from corpusmill.curation.dataset import is_blank, reject_table

LOCATION = "_location"
# C0 controls other than tab, newline, vertical tab, form feed and carriage return, plus DEL.
_CONTROL_PATTERN = r"[\x00-\x08\x0e-\x1f\x7f]"


@dataclass(frozen=True)
class ScreenRules:
    """Thresholds for rejecting text; defaults suit web, book and code corpora."""

    max_doc_bytes: int = 64 * 2**20
    max_control_fraction: float = 0.01


def rejection_reasons(table: pa.Table, rules: ScreenRules) -> pa.Array:
    """Per row: ``binary``, ``empty_text``, ``too_large`` or null when the text is acceptable."""
    text = table["text"]
    nbytes = pc.binary_length(text)
    chars = pc.utf8_length(text)
    controls = pc.count_substring_regex(text, _CONTROL_PATTERN)
    # NUL is one of the controls counted, so only texts with some can hold one: searching
    # just those (almost never any) saves a second scan of every text's bytes.
    has_controls = pc.greater(controls, 0)
    has_nul = pc.if_else(has_controls, pc.match_substring(pc.if_else(has_controls, text, ""), "\x00"), False)
    too_many_controls = pc.greater(pc.cast(controls, pa.float64()), pc.multiply(chars, rules.max_control_fraction))
    reasons = pa.nulls(table.num_rows, pa.string())
    checks = [
        ("too_large", pc.greater(nbytes, rules.max_doc_bytes)),
        ("binary", pc.or_(has_nul, too_many_controls)),
        ("empty_text", is_blank(text)),
    ]
    for reason, mask in reversed(checks):
        reasons = pc.if_else(mask, reason, reasons)
    return reasons


def screen_documents(candidates: pa.Table, stage: str, rules: ScreenRules) -> tuple[pa.Table, pa.Table]:
    """(documents, still with the private location column for the caller's records, rejects)."""
    reasons = rejection_reasons(candidates, rules)
    bad_mask = pc.is_valid(reasons)
    bad = candidates.filter(bad_mask)
    bad_reasons = reasons.filter(bad_mask).to_pylist()
    rejects = reject_table(
        stage,
        bad_reasons,
        [_detail(reason, len(text.encode())) for reason, text in zip(bad_reasons, bad["text"].to_pylist())],
        bad[LOCATION].to_pylist(),
        bad["source"].to_pylist(),
        bad["id"].to_pylist(),
        [text.encode() for text in bad["text"].to_pylist()],
    )
    return candidates.filter(pc.invert(bad_mask)), rejects


def _detail(reason: str, nbytes: int) -> str:
    if reason == "too_large":
        return f"text is {nbytes:,} bytes"
    if reason == "binary":
        return "NUL bytes or too many control characters"
    return "text is empty or whitespace only"
