"""Up-sampling rules for the tokenizer's training sample: which documents, how many copies.

Why: Nemotron-4 trains its tokenizer on a random sample of the final data with non-English
data up-sampled, so that rare languages get pieces of their own rather than byte fallbacks.
A document's group is (category, language): its natural language for prose, its
programming language for code. Every group gets a multiplier (explicit, or from a
temperature over natural languages); multipliers are then scaled down together so the
expected sample fits ``max_bytes``. Each document gets ``floor(rate)`` copies plus one
more with probability ``frac(rate)``, decided by a seeded hash of its id, so the draw does
not depend on shard order, batch size or worker count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

CATEGORIES = ("english", "multilingual", "code")
CLASSIFY_COLUMNS = ("category", "lang", "code_lang")
UNKNOWN = "und"
GroupKey = tuple[str, str]


class SamplingError(ValueError):
    """The sampling settings or the input cannot produce a sample; the message says the fix."""


@dataclass(frozen=True)
class SamplingPlan:
    """What the user asked for. ``multipliers`` are keyed by category, language or code language."""

    multipliers: Mapping[str, float] = field(default_factory=dict)
    temperature: float | None = None
    max_bytes: int | None = None
    seed: int = 0


@dataclass
class GroupTally:
    docs: int = 0
    bytes: int = 0


def require_classified(schema: pa.Schema, location: str) -> None:
    missing = [name for name in CLASSIFY_COLUMNS if name not in schema.names]
    if missing:
        raise SamplingError(f"{location}: no {', '.join(missing)} column(s); run `corpusmill classify` on it first")


def group_keys(table: pa.Table) -> tuple[list[str], list[str]]:
    """Per row, its category and its language (natural language, or code language for code)."""
    category = pc.fill_null(table["category"].cast(pa.string()), UNKNOWN)
    is_code = pc.fill_null(pc.equal(category, "code"), False)
    language = pc.if_else(is_code, table["code_lang"].cast(pa.string()), table["lang"].cast(pa.string()))
    return category.to_pylist(), pc.fill_null(language, UNKNOWN).to_pylist()


def tally_groups(table: pa.Table) -> dict[GroupKey, GroupTally]:
    categories, languages = group_keys(table)
    sizes = pc.binary_length(table["text"]).to_numpy(zero_copy_only=False)
    tallies: dict[GroupKey, GroupTally] = {}
    for key, size in zip(zip(categories, languages), sizes):
        tally = tallies.setdefault(key, GroupTally())
        tally.docs += 1
        tally.bytes += int(size)
    return tallies


def temperature_multipliers(bytes_per_language: Mapping[str, int], temperature: float) -> dict[str, float]:
    """Multipliers that turn shares p_l into p_l^(1/T) / sum(p^(1/T)): T=1 keeps, larger T flattens."""
    if temperature <= 0:
        raise SamplingError(f"--temperature must be > 0 (got {temperature}); 1 keeps the natural mix")
    total = sum(bytes_per_language.values())
    shares = {lang: nbytes / total for lang, nbytes in bytes_per_language.items() if nbytes > 0}
    flattened = {lang: share ** (1 / temperature) for lang, share in shares.items()}
    norm = sum(flattened.values())
    return {lang: flattened[lang] / norm / share for lang, share in shares.items()}


def group_multiplier(key: GroupKey, plan: SamplingPlan, temperature_factors: Mapping[str, float]) -> float:
    """Category factor times language factor; an explicit language factor beats the temperature."""
    category, language = key
    language_factor = plan.multipliers.get(language, temperature_factors.get(language, 1.0))
    return plan.multipliers.get(category, 1.0) * language_factor


def sampling_rates(composition: Mapping[GroupKey, GroupTally], plan: SamplingPlan) -> dict[GroupKey, float]:
    """Expected copies per document of each group, scaled so the sample fits ``plan.max_bytes``."""
    for name, value in plan.multipliers.items():
        if value < 0 or not math.isfinite(value):
            raise SamplingError(f"--upsample {name}={value}: a multiplier must be a finite number >= 0")
    if plan.max_bytes is not None and plan.max_bytes <= 0:
        raise SamplingError(f"--max-bytes must be positive (got {plan.max_bytes})")
    temperature_factors: dict[str, float] = {}
    if plan.temperature is not None:
        prose_bytes: dict[str, int] = {}
        for (category, language), tally in composition.items():
            if category != "code":
                prose_bytes[language] = prose_bytes.get(language, 0) + tally.bytes
        if prose_bytes:
            temperature_factors = temperature_multipliers(prose_bytes, plan.temperature)
    rates = {key: group_multiplier(key, plan, temperature_factors) for key in composition}
    upsampled_bytes = sum(rates[key] * tally.bytes for key, tally in composition.items())
    if upsampled_bytes == 0:
        raise SamplingError("every group has multiplier 0 or no text: nothing to sample; check --upsample")
    if plan.max_bytes is not None and upsampled_bytes > plan.max_bytes:
        scale = plan.max_bytes / upsampled_bytes
        rates = {key: rate * scale for key, rate in rates.items()}
    return rates


def draw_copies(ids: pa.Array, rates: np.ndarray, seed: int) -> np.ndarray:
    """Copies of each document: floor(rate), plus one when its seeded hash falls under frac(rate)."""
    uniforms = np.array(
        [xxhash.xxh3_64_intdigest(doc_id, seed=seed) / 2.0**64 for doc_id in ids.to_pylist()], dtype=np.float64
    )
    whole = np.floor(rates)
    return (whole + (uniforms < rates - whole)).astype(np.int32)


def merge_tallies(parts: list[dict[GroupKey, GroupTally]]) -> dict[GroupKey, GroupTally]:
    merged: dict[GroupKey, GroupTally] = {}
    for part in parts:
        for key, tally in part.items():
            total = merged.setdefault(key, GroupTally())
            total.docs += tally.docs
            total.bytes += tally.bytes
    return merged
