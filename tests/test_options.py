"""One options declaration gives the CLI flags, the YAML keys and their validation."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from corpusmill.curation.errors import ConfigError
from corpusmill.curation.options import APPEND, NARGS, from_mapping, option
from corpusmill.pipelines.arguments import add_arguments, from_cli


def _count(text: str) -> float:
    scale = {"K": 1e3, "M": 1e6}.get(text[-1:].upper(), 1)
    return float(text[:-1] if scale != 1 else text) * scale


@dataclass(frozen=True, kw_only=True)
class Example:
    inputs: tuple[str, ...] = option(positional=True, help="inputs")
    out: str = option(help="output")
    partitions: int | None = option(None, help="partitions")
    threshold: float = option(0.8, help="threshold")
    split_by: tuple[str, ...] = option(("category", "language"), help="keys")
    upsample: tuple[str, ...] = option((), help="factors", cli=NARGS)
    shards: tuple[str, ...] = option((), help="shard dirs", cli=APPEND)
    tokens: float | None = option(None, help="tokens", parse=_count)
    verify: str = option("exact", help="mode", choices=("exact", "estimate"))
    strict: bool = option(False, help="strict")


def parse(argv: list[str]) -> Example:
    parser = argparse.ArgumentParser()
    add_arguments(parser, Example)
    return from_cli(Example, parser.parse_args(argv))


def test_cli_flags_come_from_the_declaration() -> None:
    options = parse(
        ["a", "b", "--out", "o", "--partitions", "3", "--split-by", "x,y", "--upsample", "de=2", "code=0.5"]
        + ["--shards", "s1", "--shards", "s2", "--tokens", "20M", "--strict"]
    )
    assert options == Example(
        inputs=("a", "b"), out="o", partitions=3, split_by=("x", "y"), upsample=("de=2", "code=0.5"),
        shards=("s1", "s2"), tokens=20e6, strict=True,
    )
    assert parse(["a", "--out", "o"]) == Example(inputs=("a",), out="o")


def test_cli_refuses_bad_values(capsys: pytest.CaptureFixture) -> None:
    for argv in (["a", "--out", "o", "--partitions", "x"], ["a", "--out", "o", "--verify", "fuzzy"], ["a"]):
        with pytest.raises(SystemExit):
            parse(argv)
    assert "--partitions" in capsys.readouterr().err


def test_mapping_gives_the_same_options_as_the_cli() -> None:
    where = lambda key: f"p.yaml:3: step 1 (x), key {key}"  # noqa: E731
    mapping = {"inputs": ["a", "b"], "out": "o", "partitions": 3, "split_by": "x,y", "upsample": ["de=2", "code=0.5"]}
    mapping |= {"shards": "s1", "tokens": "20M", "strict": True, "threshold": 1}
    options = from_mapping(Example, mapping, where)
    assert options == Example(
        inputs=("a", "b"), out="o", partitions=3, split_by=("x", "y"), upsample=("de=2", "code=0.5"),
        shards=("s1",), tokens=20e6, strict=True, threshold=1.0,
    )


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"inputs": ["a"], "out": "o", "partitons": 3}, "unknown key `partitons`"),
        ({"inputs": ["a"], "out": "o", "partitions": "many"}, "`partitions` must be an integer"),
        ({"inputs": ["a"], "out": "o", "partitions": 2.5}, "`partitions` must be an integer, got float"),
        ({"inputs": ["a"], "out": "o", "strict": "yes"}, "`strict` must be true or false"),
        ({"inputs": ["a"], "out": "o", "verify": "fuzzy"}, "`verify` must be one of exact, estimate"),
        ({"inputs": ["a"], "out": "o", "split_by": {"a": 1}}, "`split_by` must be a list"),
        ({"inputs": ["a"]}, "missing required key(s) `out`"),
    ],
)
def test_mapping_errors_name_the_place_and_key(mapping: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        from_mapping(Example, mapping, lambda key: f"p.yaml:{7 if key else 5}: step 2 (x)")
    assert message in str(error.value) and str(error.value).startswith("p.yaml:")


def test_undeclared_fields_are_refused() -> None:
    @dataclass(frozen=True, kw_only=True)
    class Loose:
        out: str = "x"

    with pytest.raises(TypeError, match="not declared with option"):
        add_arguments(argparse.ArgumentParser(), Loose)
