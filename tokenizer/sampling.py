"""Up-sampling rules for the tokenizer's training sample: which documents, how many copies.

Why: Nemotron-4 trains its tokenizer on a random sample of the final data with non-English
data up-sampled, so that rare languages get pieces of their own rather than byte fallbacks.
A document's group is (category, language): its natural language for prose, its
programming language for code. Every group gets a multiplier (explicit, or from a
temperature over natural languages); documents of category ``unknown`` (no language could be
told) get 0 unless ``--upsample unknown=F`` asks for them, as the shipped blend leaves them
out of training; multipliers are then scaled down together so the
expected sample fits ``max_bytes``. Each document gets ``floor(rate)`` copies plus one
more with probability ``frac(rate)``, decided by a seeded hash of its id, so the draw does
not depend on shard order, batch size or worker count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from corpusmill.curation.classify.labels import (
    CATEGORY,
    CODE,
    CODE_LANG,
    LABEL_COLUMNS,
    LANG,
    UNDETERMINED,
    UNKNOWN,
)
from corpusmill.curation.errors import CorpusmillError
from corpusmill.curation.options import NARGS, option

GroupKey = tuple[str, str]


class SamplingError(CorpusmillError, ValueError):
    """The sampling settings or the input cannot produce a sample; the message says the fix."""


def parse_multipliers(pairs: tuple[str, ...] | list[str]) -> dict[str, float]:
    """``NAME=FACTOR`` words as a dict (a later word for the same name wins)."""
    multipliers = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            multipliers[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise SamplingError(f"--upsample {pair!r}: expected NAME=FACTOR, e.g. multilingual=4 or de=2.5")
    return multipliers


def _check_temperature(temperature: float) -> None:
    if temperature <= 0:
        raise SamplingError(f"--temperature must be > 0 (got {temperature}); 1 keeps the natural mix")


def _byte_count(text: str) -> int:
    """``2e9`` or ``400000``: a byte count written as any number."""
    return int(float(text))


@dataclass(frozen=True, kw_only=True)
class SamplingPlan:
    """What the user asked for. ``upsample`` factors are keyed by category, language or code language."""

    upsample: tuple[str, ...] = option(
        (),
        cli=NARGS,
        metavar="NAME=FACTOR",
        help="multiply a category (english, multilingual, code, unknown), a language (de, ja) or a code language "
        "(Python) by FACTOR, e.g. --upsample multilingual=3 code=0.5; a language factor overrides "
        "--temperature for that language; unknown (language `und`) is 0 unless given",
    )
    temperature: float | None = option(
        None,
        help="temperature sampling over natural languages: shares p become p^(1/T) (T=1 keeps the mix; 3-5 is common)",
    )
    max_bytes: int | None = option(None, parse=_byte_count, help="cap on the expected sample size in bytes (e.g. 2e9)")
    seed: int = option(0, help="seed of the draw (default 0)")

    def __post_init__(self) -> None:
        for name, value in self.multipliers.items():
            if value < 0 or not math.isfinite(value):
                raise SamplingError(f"--upsample {name}={value}: a multiplier must be a finite number >= 0")
        if self.temperature is not None:
            _check_temperature(self.temperature)
        if self.max_bytes is not None and self.max_bytes <= 0:
            raise SamplingError(f"--max-bytes must be positive (got {self.max_bytes})")

    @property
    def multipliers(self) -> dict[str, float]:
        return parse_multipliers(self.upsample)

    def record(self) -> dict[str, Any]:
        """The plan as the sample's config and composition report record it."""
        return {
            "multipliers": dict(sorted(self.multipliers.items())),
            "temperature": self.temperature,
            "max_bytes": self.max_bytes,
            "seed": self.seed,
        }


@dataclass
class GroupTally:
    docs: int = 0
    bytes: int = 0


def require_classified(schema: pa.Schema, location: str) -> None:
    missing = [name for name in LABEL_COLUMNS if name not in schema.names]
    if missing:
        raise SamplingError(f"{location}: no {', '.join(missing)} column(s); run `corpusmill classify` on it first")


def group_keys(table: pa.Table) -> tuple[list[str], list[str]]:
    """Per row, its category and its language (natural language, or code language for code)."""
    category = pc.fill_null(table[CATEGORY].cast(pa.string()), UNKNOWN)
    is_code = pc.fill_null(pc.equal(category, CODE), False)
    language = pc.if_else(is_code, table[CODE_LANG].cast(pa.string()), table[LANG].cast(pa.string()))
    return category.to_pylist(), pc.fill_null(language, UNDETERMINED).to_pylist()


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
    _check_temperature(temperature)
    total = sum(bytes_per_language.values())
    shares = {lang: nbytes / total for lang, nbytes in bytes_per_language.items() if nbytes > 0}
    flattened = {lang: share ** (1 / temperature) for lang, share in shares.items()}
    norm = sum(flattened.values())
    return {lang: flattened[lang] / norm / share for lang, share in shares.items()}


def group_multiplier(
    key: GroupKey, multipliers: Mapping[str, float], temperature_factors: Mapping[str, float]
) -> float:
    """Category factor times language factor; an explicit language factor beats the temperature.

    ``unknown`` documents are out (0) unless their category has an explicit factor.
    """
    category, language = key
    if category == UNKNOWN:
        return multipliers.get(UNKNOWN, 0.0)
    language_factor = multipliers.get(language, temperature_factors.get(language, 1.0))
    return multipliers.get(category, 1.0) * language_factor


def sampling_rates(composition: Mapping[GroupKey, GroupTally], plan: SamplingPlan) -> dict[GroupKey, float]:
    """Expected copies per document of each group, scaled so the sample fits ``plan.max_bytes``."""
    temperature_factors: dict[str, float] = {}
    if plan.temperature is not None:
        prose_bytes: dict[str, int] = {}
        for (category, language), tally in composition.items():
            if category not in (CODE, UNKNOWN):
                prose_bytes[language] = prose_bytes.get(language, 0) + tally.bytes
        if prose_bytes:
            temperature_factors = temperature_multipliers(prose_bytes, plan.temperature)
    multipliers = plan.multipliers
    rates = {key: group_multiplier(key, multipliers, temperature_factors) for key in composition}
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
