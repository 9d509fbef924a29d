"""Resolution arithmetic: group weights, within-group shares, selection, epochs, caps and warnings.

Token counts are set by hand so every expected weight can be worked out on paper.
"""

from __future__ import annotations

import math
from pathlib import Path
from textwrap import dedent

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpusmill.curation.blend.inventory import AvailablePrefix, BlendError, Inventory
from corpusmill.curation.blend.resolve import Resolution, resolve
from corpusmill.curation.blend.spec import BlendSpec, parse_spec

KEYS = ("category", "language", "source", "split")


def prefix(name: str, tokens: int, **keys: str) -> AvailablePrefix:
    return AvailablePrefix(
        Path("/data") / name, name, {"split": "train", **keys}, max(1, tokens // 100), tokens, "a" * 64
    )


def inventory(*prefixes: AvailablePrefix, split_by: tuple[str, ...] = KEYS) -> Inventory:
    return Inventory(prefixes, {"sha256": "a" * 64}, {"/data": split_by})


def spec(text: str) -> BlendSpec:
    return parse_spec(dedent(text), "t.yaml")


def weights(resolution: Resolution) -> dict[str, float]:
    return {draw.prefix.name: draw.weight for draw in resolution.splits["train"]}


TWO_GROUPS = dedent("""\
    phases:
      pretrain:
        groups:
          english: {weight: 70}
          code: {weight: 30}
    """)


def test_group_weights_are_normalised_and_shared_by_tokens() -> None:
    shards = inventory(
        prefix("en.web", 300, category="english", language="en", source="web"),
        prefix("en.books", 100, category="english", language="en", source="books"),
        prefix("code.py", 50, category="code", language="python", source="gh"),
    )
    resolution = resolve(spec(TWO_GROUPS), shards, tokens=1000, seq_length=1)
    assert weights(resolution) == pytest.approx({"en.web": 0.525, "en.books": 0.175, "code.py": 0.3})
    assert {d.prefix.name: d.tokens_drawn for d in resolution.splits["train"]} == pytest.approx(
        {"en.web": 525, "en.books": 175, "code.py": 300}
    )
    assert {d.prefix.name: d.epochs for d in resolution.splits["train"]} == pytest.approx(
        {"en.web": 1.75, "en.books": 1.75, "code.py": 6.0}
    )
    scaled = resolve(spec(TWO_GROUPS.replace("70", "7").replace("30", "3")), shards, tokens=1000)
    assert weights(scaled) == pytest.approx(weights(resolution))
    assert resolution.warnings == [] and resolution.not_drawn == []


def test_temperature_over_languages() -> None:
    text = """\
        phases:
          p:
            groups:
              multilingual: {weight: 1, within: temperature, temperature: 2}
        """
    shards = inventory(
        prefix("de.a", 600, category="multilingual", language="de", source="a"),
        prefix("de.b", 200, category="multilingual", language="de", source="b"),
        prefix("fr.a", 200, category="multilingual", language="fr", source="a"),
    )
    # Language shares ~ (tokens share)^(1/T): sqrt(0.8) : sqrt(0.2) = 2 : 1; sources by tokens inside a language.
    assert weights(resolve(spec(text), shards)) == pytest.approx({"de.a": 0.5, "de.b": 1 / 6, "fr.a": 1 / 3})
    proportional = resolve(spec(text.replace("temperature: 2", "temperature: 1")), shards)
    assert weights(proportional) == pytest.approx({"de.a": 0.6, "de.b": 0.2, "fr.a": 0.2})


def test_explicit_weights_over_an_annotation_column() -> None:
    text = """\
        phases:
          continued:
            groups:
              english:
                weight: 1
                within: explicit
                over: quality_bucket
                weights: {high: 3, medium: 1, low: 0, premium: 2}
        """
    keys = {"category": "english", "language": "en", "source": "web"}
    shards = inventory(
        prefix("hi", 100, quality_bucket="high", **keys),
        prefix("med.1", 200, quality_bucket="medium", **keys),
        prefix("med.2", 100, quality_bucket="medium", **keys),
        prefix("lo", 50, quality_bucket="low", **keys),
        prefix("unrated", 70, quality_bucket="unknown", **keys),
        split_by=(*KEYS, "quality_bucket"),
    )
    resolution = resolve(spec(text), shards, tokens=1e7)
    assert weights(resolution) == pytest.approx({"hi": 0.75, "med.1": 0.25 * 2 / 3, "med.2": 0.25 / 3})
    assert {p.name: reason for p, reason in resolution.not_drawn} == {
        "lo": "weight 0 within group english",
        "unrated": "weight 0 within group english",
    }
    assert len(resolution.warnings) == 2
    assert "quality_bucket `unknown` is in the shards but not under `weights`" in resolution.warnings[0]
    assert "weights name quality_bucket `premium`, which no selected shard has" in resolution.warnings[1]
    assert "phases.continued.groups.english (line 4)" in resolution.warnings[0]


def test_selection_predicates_and_overlaps() -> None:
    text = """\
        phases:
          p:
            groups:
              web: {weight: 1, select: {source: [a, b]}, exclude: {language: fr}}
              french: {weight: 1, select: {language: fr}}
        """
    shards = inventory(
        prefix("a.en", 100, category="english", language="en", source="a"),
        prefix("b.en", 300, category="english", language="en", source="b"),
        prefix("a.fr", 100, category="multilingual", language="fr", source="a"),
        prefix("c.en", 100, category="english", language="en", source="c"),
    )
    resolution = resolve(spec(text), shards)
    assert weights(resolution) == pytest.approx({"a.en": 0.125, "b.en": 0.375, "a.fr": 0.5})
    assert [(p.name, reason) for p, reason in resolution.not_drawn] == [("c.en", "no group selects it")]
    overlapping = text.replace(", exclude: {language: fr}", "")
    with pytest.raises(BlendError, match=r"a\.fr is selected by .*web \(line 4\) and .*french \(line 5\).*`exclude:`"):
        resolve(spec(overlapping), shards)


def test_a_group_without_data_warns_and_its_weight_is_dropped() -> None:
    text = TWO_GROUPS.replace(
        "code: {weight: 30}", "code: {weight: 20}\n      alignment: {weight: 10, select: {source: qa}}"
    )
    shards = inventory(
        prefix("en", 100, category="english", language="en", source="web"),
        prefix("py", 100, category="code", language="python", source="gh"),
        prefix("math", 100, category="math", language="en", source="arxiv"),
    )
    resolution = resolve(spec(text), shards, seq_length=1)
    assert weights(resolution) == pytest.approx({"en": 70 / 90, "py": 20 / 90})
    assert resolution.warnings == [
        (
            "phases.pretrain.groups.alignment (line 6) has no data: no prefix of these shards matches its selection "
            "(select {source: qa}); its weight 10 (10.0% of the phase) is dropped and the other groups are "
            "renormalised to english 77.8%, code 22.2%"
        )
    ]
    assert [p.name for p, _ in resolution.not_drawn] == ["math"]


def test_a_group_whose_data_all_weighs_zero_is_dropped_too() -> None:
    text = """\
        phases:
          continued:
            groups:
              english: {weight: 3, within: explicit, over: quality_bucket, weights: {high: 1, low: 0}}
              code: {weight: 1, select: {category: code, language: [c, python]}, exclude: {source: vendored}}
        """
    keys = {"category": "english", "language": "en", "source": "web"}
    shards = inventory(
        prefix("en.low", 100, quality_bucket="low", **keys),
        prefix("py", 100, category="code", language="python", source="gh", quality_bucket="low"),
        split_by=(*KEYS, "quality_bucket"),
    )
    resolution = resolve(spec(text), shards, seq_length=1)
    assert weights(resolution) == {"py": 1.0}
    assert resolution.warnings[-1] == (
        "phases.continued.groups.english (line 4) draws nothing: every prefix it selects has weight 0 under its "
        "`weights` over quality_bucket; its weight 3 (75.0% of the phase) is dropped and the other groups are "
        "renormalised to code 100.0%"
    )
    code = spec(text).phase(None).groups[1]
    assert code.select.describe() == "select {category: code, language: [c, python]}, exclude {source: vendored}"


def test_token_budget_comes_from_the_flag_the_spec_or_the_data() -> None:
    shards = inventory(prefix("en", 400, category="english", language="en", source="web"))
    text = "phases:\n  p:\n    tokens: 2K\n    groups: {english: {weight: 1}}\n"
    assert (resolve(spec(text), shards).total_tokens, resolve(spec(text), shards).tokens_origin) == (
        2000,
        "phases.p.tokens",
    )
    assert resolve(spec(text), shards, tokens=5e3).total_tokens == 5000
    unset = resolve(spec(text.replace("    tokens: 2K\n", "")), shards)
    assert (unset.total_tokens, unset.splits["train"][0].epochs) == (400, 1.0)


def test_sources_repeated_past_their_cap_are_warned() -> None:
    text = TWO_GROUPS + "max_epochs:\n  default: 4\n  sources: {gh: 8}\n"
    shards = inventory(
        prefix("en.web", 300, category="english", language="en", source="web"),
        prefix("en.wiki", 100, category="english", language="en", source="wiki"),
        prefix("code.gh", 50, category="code", language="python", source="gh"),
        prefix("code.wiki", 50, category="code", language="python", source="wiki"),
    )
    # english: 0.7 x 2000 = 1400 tokens over 400 -> 3.5 epochs; code: 600 over 100 -> 6 epochs.
    resolution = resolve(spec(text), shards, tokens=2000, seq_length=1)
    by_source = {d.prefix.name: d.epochs for d in resolution.splits["train"]}
    assert by_source == pytest.approx({"en.web": 3.5, "en.wiki": 3.5, "code.gh": 6.0, "code.wiki": 6.0})
    # wiki: 350 + 300 drawn over 150 available = 4.33 epochs > 4; gh: 6 <= its own cap of 8; web: 3.5 <= 4.
    assert resolution.warnings == [
        (
            "source `wiki` is repeated 4.33 epochs in phase pretrain, above its cap of 4 (max_epochs, line 7): lower "
            "the weights drawing on it, add data, or raise the cap"
        )
    ]
    assert resolve(spec(text), shards, tokens=1000, seq_length=1).warnings == []


def test_components_too_small_to_get_a_sample_are_warned() -> None:
    shards = inventory(
        prefix("en", 10**6, category="english", language="en", source="web"),
        prefix("py", 10, category="code", language="python", source="gh"),
    )
    text = TWO_GROUPS.replace("weight: 30", "weight: 0.001")
    resolution = resolve(spec(text), shards, tokens=1e6, seq_length=4096)
    assert len(resolution.warnings) == 1
    assert resolution.warnings[0].startswith("py has weight 1.43e-05: 0.00 samples of 4096 tokens")
    assert resolve(spec(text), shards, tokens=1e9, seq_length=4096).warnings == []


def test_keys_the_shards_were_not_split_by_are_refused_with_the_fix() -> None:
    text = "phases:\n  c:\n    groups:\n      english: {weight: 1, select: {quality_bucket: high}}\n"
    shards = inventory(prefix("en", 100, category="english", language="en", source="web"))
    with pytest.raises(
        BlendError, match=r"english \(line 4\) uses key `quality_bucket`.*--split-by category,language,source; re-run"
    ):
        resolve(spec(text), shards)


def test_held_out_prefixes_are_weighted_like_the_training_groups() -> None:
    shards = inventory(
        prefix("en", 900, category="english", language="en", source="web"),
        prefix("en.valid", 10, category="english", language="en", source="web", split="valid"),
        prefix("py", 900, category="code", language="python", source="gh"),
        prefix("py.valid", 40, category="code", language="python", source="gh", split="valid"),
    )
    resolution = resolve(spec(TWO_GROUPS), shards)
    assert {d.prefix.name: d.weight for d in resolution.splits["valid"]} == pytest.approx(
        {"en.valid": 0.7, "py.valid": 0.3}
    )
    assert resolution.splits["test"] == []
    assert [d.prefix.name for d in resolution.splits["train"]] == ["en", "py"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["english", "code", "multilingual"]),
            st.sampled_from(["a", "b", "c"]),
            st.integers(1, 10**12),
        ),
        min_size=1,
        max_size=12,
        unique_by=lambda item: item[:2],
    )
)
def test_weights_sum_to_one_and_honour_group_shares(components: list[tuple[str, str, int]]) -> None:
    text = """\
        phases:
          p:
            groups:
              english: {weight: 70}
              multilingual: {weight: 15, within: temperature, over: source, temperature: 3}
              code: {weight: 15, within: explicit, weights: {a: 1, b: 2, c: 3}}
        """
    shards = inventory(*(prefix(f"{c}.{s}", t, category=c, language="x", source=s) for c, s, t in components))
    resolution = resolve(spec(text), shards)
    draws = resolution.splits["train"]
    assert math.isclose(sum(d.weight for d in draws), 1.0, rel_tol=1e-9)
    present = {c for c, _, _ in components}
    group_weight = {"english": 70, "multilingual": 15, "code": 15}
    for group in present:
        share = sum(d.weight for d in draws if d.group == group)
        assert math.isclose(share, group_weight[group] / sum(group_weight[g] for g in present), rel_tol=1e-9)


def test_a_where_predicate_selects_prefixes_by_their_keys() -> None:
    text = """\
        phases:
          continued:
            groups:
              curated:
                weight: 3
                where: "quality_bucket != 'low' and source not in ['alignment', 'spam']"
              qa: {weight: 1, select: {category: english}, where: "source == 'alignment'"}
        """
    shards = inventory(
        prefix("en.hi", 300, category="english", language="en", source="web", quality_bucket="high"),
        prefix("de.mid", 100, category="multilingual", language="de", source="web", quality_bucket="medium"),
        prefix("en.lo", 100, category="english", language="en", source="web", quality_bucket="low"),
        prefix("qa", 50, category="english", language="en", source="alignment", quality_bucket="high"),
        prefix("qa.code", 50, category="code", language="python", source="alignment", quality_bucket="high"),
        split_by=(*KEYS, "quality_bucket"),
    )
    resolution = resolve(spec(text), shards, seq_length=1)
    # `where` alone replaces the default {category: <group name>}; with `select`, both must hold.
    assert weights(resolution) == pytest.approx({"en.hi": 0.75 * 0.75, "de.mid": 0.75 * 0.25, "qa": 0.25})
    assert {p.name for p, _ in resolution.not_drawn} == {"en.lo", "qa.code"}

    with pytest.raises(BlendError, match=r"groups\.qa \(line 7\) uses key `sorce`, but /data was tokenized with"):
        resolve(spec(text.replace("source == 'alignment'", "sorce == 'alignment'")), shards)
    with pytest.raises(BlendError, match=r"groups\.qa \(line 7\): `where` `source == 1` compares a string with a"):
        resolve(spec(text.replace("source == 'alignment'", "source == 1")), shards)
    unsplit = inventory(*shards.prefixes, split_by=KEYS)
    with pytest.raises(BlendError, match=r"uses key `quality_bucket`.*with `quality_bucket` added to --split-by"):
        resolve(spec(text), unsplit)
