"""Blend spec schema: the shipped specs load, and every mistake is named with its file, line and key."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from corpusmill.curation.blend.spec import BlendSpecError, load_spec, parse_spec, parse_token_count

SPECS = Path(__file__).resolve().parents[2] / "blend_specs"

VALID = """\
phases:
  pretrain:
    tokens: 1T
    groups:
      english: {weight: 70}
      code: {weight: 30, within: explicit, over: language, weights: {python: 2, c: 1}}
"""


def test_shipped_nemotron4_spec_is_70_15_15_then_continued() -> None:
    spec = load_spec(SPECS / "nemotron4.yaml")
    pretrain = spec.phase(None)
    assert (spec.name, pretrain.name, pretrain.tokens) == ("nemotron4", "pretrain", 8e12)
    weights = {group.name: group.weight for group in pretrain.groups}
    assert {name: weight / sum(weights.values()) for name, weight in weights.items()} == pytest.approx(
        {"english": 0.70, "multilingual": 0.15, "code": 0.15}
    )
    multilingual = next(g for g in pretrain.groups if g.name == "multilingual")
    assert (multilingual.within, multilingual.over, multilingual.temperature) == ("temperature", "language", 3.3)
    assert multilingual.select.matches({"category": "multilingual", "language": "de"})
    assert not multilingual.select.matches({"category": "english"})
    continued = spec.phase("continued")
    alignment = next(g for g in continued.groups if g.name == "alignment")
    assert alignment.select.matches({"category": "english", "source": "alignment"})
    english = next(g for g in continued.groups if g.name == "english")
    assert not english.select.matches({"category": "english", "source": "alignment"})
    assert english.weights == {"high": 3.0, "medium": 1.0, "low": 0.0}
    assert spec.max_epochs("any_source") == 4.0


def test_every_shipped_spec_loads() -> None:
    specs = sorted(SPECS.glob("*.yaml"))
    assert specs
    for path in specs:
        assert load_spec(path).phases


@pytest.mark.parametrize(
    "text, message",
    [
        (
            VALID.replace("{weight: 70}", "{weight: 70, where: \"source.startswith('w')\"}"),
            r":5: phases\.pretrain\.groups\.english\.where: unexpected character '\.': attribute access is not part",
        ),
        (
            VALID.replace("{weight: 70}", "{weight: 70, where: \"__import__('os')\"}"),
            r":5: .*english\.where: `__import__`: names starting with `__` are refused",
        ),
        (
            VALID.replace("weight: 70", "wieght: 70"),
            r"x\.yaml:5: phases\.pretrain\.groups\.english\.wieght: unknown key; expected one of: description, weight",
        ),
        (
            VALID.replace("{weight: 70}", "{within: tokens}"),
            r"x\.yaml:5: phases\.pretrain\.groups\.english: missing `weight`",
        ),
        (
            VALID.replace("weight: 70", "weight: -1"),
            r":5: phases\.pretrain\.groups\.english\.weight: must be >= 0, got -1",
        ),
        (VALID.replace("weight: 70", "weight: lots"), r":5: .*english\.weight: expected a number, got 'lots'"),
        (
            VALID.replace("weight: 70", "weight: 0").replace("weight: 30", "weight: 0"),
            r":5: phases\.pretrain\.groups: every weight is 0",
        ),
        (
            VALID.replace("within: explicit", "within: uniform"),
            r":6: .*code\.within: 'uniform'; expected one of: tokens, temperature, explicit",
        ),
        (
            VALID.replace("within: explicit", "within: tokens"),
            r":6: .*code\.over: only used with `within: temperature` or `within: explicit`",
        ),
        (
            VALID.replace("within: explicit", "within: temperature"),
            r":6: .*code\.weights: only used with `within: explicit`, not `within: temperature`",
        ),
        (
            VALID.replace(", weights: {python: 2, c: 1}", ""),
            r":6: phases\.pretrain\.groups\.code: `within: explicit` needs `weights`",
        ),
        (
            VALID.replace("weights: {python: 2, c: 1}", "weights: {python: 0}"),
            r":6: .*code\.weights: needs at least one weight above 0",
        ),
        (VALID.replace("tokens: 1T", "tokens: many"), r":3: phases\.pretrain\.tokens: 'many' is not a token count"),
        (
            VALID.replace("    tokens: 1T\n", "    tokens: 1T\n    tokens: 2T\n"),
            r"x\.yaml:4: key 'tokens' appears twice in the same mapping \(line 3\)",
        ),
        (
            VALID.replace("english: {weight: 70}", "english: {weight: 70, select: {source: []}}"),
            r":5: .*english\.select\.source: expected a value or a list",
        ),
        (
            VALID.replace("english: {weight: 70}", "english: 70"),
            r":5: phases\.pretrain\.groups\.english: expected a mapping, got int 70",
        ),
        ("phases: {}\n", r":1: phases: needs at least one phase"),
        ("name: x\n", r"x\.yaml:1: spec: missing `phases`"),
        ("phases: [pretrain]\n", r":1: phases: expected a mapping, got list"),
        (VALID + "max_epochs: {sources: {wiki: 0}}\n", r":7: max_epochs\.sources\.wiki: must be > 0, got 0"),
        (
            VALID + "max_epochs: {default: 4, per_source: {}}\n",
            r":7: max_epochs\.per_source: unknown key; expected one of: default, sources",
        ),
        ("phases:\n  p: {groups: {a: {weight: 1}}\n", r"x\.yaml:3:1: not valid YAML"),
    ],
)
def test_mistakes_are_named_with_line_and_key(text: str, message: str) -> None:
    with pytest.raises(BlendSpecError, match=message):
        parse_spec(text, "x.yaml")


def test_defaults_and_caps() -> None:
    text = VALID + dedent("""\
        seq_length: 2048
        max_epochs:
          default: 4
          sources: {wiki: 10}
        """)
    spec = parse_spec(text, "specs/mine.yaml")
    assert (spec.name, spec.seq_length) == ("mine", 2048)
    assert (spec.max_epochs("wiki"), spec.max_epochs("web"), spec.cap_lines["wiki"]) == (10.0, 4.0, 10)
    english, code = spec.phase("pretrain").groups
    assert (english.within, english.over, english.line) == ("tokens", None, 5)
    assert dict(code.weights) == {"python": 2.0, "c": 1.0}
    with pytest.raises(BlendSpecError, match="no phase 'continued'; phases are pretrain"):
        spec.phase("continued")
    assert parse_spec(VALID, "x.yaml").max_epochs("web") is None


@pytest.mark.parametrize(
    "text, tokens",
    [("8T", 8e12), ("300B", 3e11), ("1.5m", 1.5e6), ("1e12", 1e12), ("1_000", 1000.0), (42, 42.0), (2.5e9, 2.5e9)],
)
def test_token_counts(text: object, tokens: float) -> None:
    assert parse_token_count(text) == tokens


@pytest.mark.parametrize("text", ["0", "-5", "8X", "", True])
def test_bad_token_counts(text: object) -> None:
    with pytest.raises(ValueError):
        parse_token_count(text)
