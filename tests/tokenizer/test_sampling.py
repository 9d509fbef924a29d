"""The up-sampling arithmetic and the seeded draw."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpusmill.tokenizer.sampling import (
    GroupTally,
    SamplingError,
    SamplingPlan,
    draw_copies,
    group_keys,
    require_classified,
    sampling_rates,
    temperature_multipliers,
)

COMPOSITION = {
    ("english", "en"): GroupTally(docs=100, bytes=800_000),
    ("multilingual", "de"): GroupTally(docs=20, bytes=150_000),
    ("multilingual", "ja"): GroupTally(docs=5, bytes=50_000),
    ("code", "Python"): GroupTally(docs=50, bytes=400_000),
}


def test_temperature_one_keeps_the_mix_and_higher_temperatures_flatten_it():
    shares = {"en": 800_000, "de": 150_000, "ja": 50_000}
    assert temperature_multipliers(shares, 1.0) == pytest.approx({"en": 1.0, "de": 1.0, "ja": 1.0})
    factors = temperature_multipliers(shares, 3.0)
    new_bytes = {lang: shares[lang] * factors[lang] for lang in shares}
    total = sum(new_bytes.values())
    expected = {lang: (b / 1e6) ** (1 / 3) for lang, b in shares.items()}
    norm = sum(expected.values())
    assert {lang: b / total for lang, b in new_bytes.items()} == pytest.approx(
        {k: v / norm for k, v in expected.items()}
    )
    assert factors["ja"] > factors["de"] > 1.0 > factors["en"]


def test_category_and_language_multipliers_compose_and_language_beats_temperature():
    plan = SamplingPlan(upsample=("multilingual=2", "ja=5", "code=0.5"), temperature=2.0)
    rates = sampling_rates(COMPOSITION, plan)
    assert rates[("multilingual", "ja")] == pytest.approx(10.0)  # 2 (category) x 5 (explicit, not temperature)
    assert rates[("code", "Python")] == pytest.approx(0.5)  # temperature covers natural languages only
    temperature = temperature_multipliers({"en": 800_000, "de": 150_000, "ja": 50_000}, 2.0)
    assert rates[("multilingual", "de")] == pytest.approx(2.0 * temperature["de"])
    assert rates[("english", "en")] == pytest.approx(temperature["en"])


def test_rates_scale_down_together_to_the_byte_budget():
    plan = SamplingPlan(upsample=("multilingual=4",), max_bytes=500_000)
    rates = sampling_rates(COMPOSITION, plan)
    expected_bytes = sum(rates[key] * tally.bytes for key, tally in COMPOSITION.items())
    assert expected_bytes == pytest.approx(500_000)
    assert rates[("multilingual", "de")] / rates[("english", "en")] == pytest.approx(4.0)
    unbounded = sampling_rates(COMPOSITION, SamplingPlan(max_bytes=10**12))
    assert set(unbounded.values()) == {1.0}


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ({"upsample": ("de=-1",)}, "finite number >= 0"),
        ({"temperature": 0.0}, "--temperature must be > 0"),
        ({"max_bytes": 0}, "--max-bytes must be positive"),
        ({"upsample": ("english=0", "multilingual=0", "code=0")}, "nothing to sample"),
    ],
)
def test_bad_plans_are_refused_with_the_fix(plan, message):
    with pytest.raises(SamplingError, match=message):
        sampling_rates(COMPOSITION, SamplingPlan(**plan))


def test_unclassified_input_names_the_stage_to_run():
    with pytest.raises(SamplingError, match="corpusmill classify"):
        require_classified(pa.schema([("id", pa.string()), ("text", pa.string()), ("source", pa.string())]), "x")


def test_code_is_grouped_by_code_language_and_prose_by_language():
    table = pa.table(
        {
            "category": ["code", "english", None],
            "lang": ["und", "en", None],
            "code_lang": ["Rust", None, None],
        }
    )
    assert group_keys(table) == (["code", "english", "unknown"], ["Rust", "en", "und"])


def test_unknown_documents_are_left_out_unless_asked_for_and_never_count_as_a_language():
    composition = {
        ("english", "en"): GroupTally(10, 9_000),
        ("multilingual", "de"): GroupTally(10, 1_000),
        ("unknown", "und"): GroupTally(10, 1),
    }
    rates = sampling_rates(composition, SamplingPlan(temperature=3.0))
    assert rates[("unknown", "und")] == 0.0
    # `und`'s single byte takes no temperature share: de is lifted exactly as with en and de alone
    alone = sampling_rates({key: composition[key] for key in list(composition)[:2]}, SamplingPlan(temperature=3.0))
    assert rates[("multilingual", "de")] == pytest.approx(alone[("multilingual", "de")])
    asked = sampling_rates(composition, SamplingPlan(upsample=("unknown=0.5",), temperature=3.0))
    assert asked[("unknown", "und")] == 0.5


@settings(max_examples=40, deadline=None)
@given(rate=st.floats(min_value=0.0, max_value=6.0), seed=st.integers(0, 2**32 - 1))
def test_draw_is_a_function_of_id_and_seed_with_floor_or_ceil_copies(rate, seed):
    ids = pa.array([f"doc-{i}" for i in range(300)])
    copies = draw_copies(ids, np.full(300, rate), seed)
    assert set(np.unique(copies)) <= {int(np.floor(rate)), int(np.floor(rate)) + 1}
    order = np.random.default_rng(0).permutation(300)
    shuffled = draw_copies(pa.array([f"doc-{i}" for i in order]), np.full(300, rate), seed)
    assert np.array_equal(shuffled, copies[order])


def test_draw_matches_the_rate_on_average():
    ids = pa.array([f"doc-{i}" for i in range(20_000)])
    for rate in (0.1, 0.5, 2.3):
        assert draw_copies(ids, np.full(20_000, rate), seed=7).mean() == pytest.approx(rate, abs=0.02)
    assert not np.array_equal(draw_copies(ids, np.full(20_000, 0.5), 1), draw_copies(ids, np.full(20_000, 0.5), 2))
