"""Properties of a trained model: exact round trip on any Unicode, single-digit pieces, source layout kept."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpusmill.tokenizer.codec import Codec, ModelError

from .conftest import TAB_INDENTED_SOURCES

# Lone surrogates cannot be encoded as UTF-8, so no document can hold one.
ANY_CHARACTER = st.characters(blacklist_categories=("Cs",))
TRICKY_PIECES = st.sampled_from(
    [
        "😀",
        "👩‍👩‍👧",
        "🇩🇪",
        "漢字",
        "かな",
        "한국어",
        "e\u0301",
        "\u0915\u094d\u0937",
        "\u200b",
        "\u200d",
        "\ufeff",
        "\x00",
        "\x07",
        "\x1b[0m",
        "\x7f",
        "\u2028",
        "\r\n",
        "\r",
        "\n\n\n",
        "\t",
        "\t\t",
        " ",
        "    ",
        "  \t ",
        "\u2581",
        "\u2581\u2581 x",
        "\u00a0",
        "\u3000",
        "0",
        "123",
        "3.14",
        "<s>",
        "</s>",
        "<mask>",
        "<unk>",
        "word",
    ]
)
MIXED_TEXT = st.lists(st.one_of(TRICKY_PIECES, st.text(ANY_CHARACTER, max_size=8)), max_size=30).map("".join)


@pytest.fixture(scope="module")
def codec(tiny_model) -> Codec:
    return Codec(tiny_model)


@settings(max_examples=300, deadline=None)
@given(text=st.text(ANY_CHARACTER, max_size=200))
def test_round_trip_on_arbitrary_unicode(codec, text):
    assert codec.decode(codec.encode(text)) == text


@settings(max_examples=300, deadline=None)
@given(
    text=MIXED_TEXT,
    lead=st.sampled_from(["", " ", "  ", "\t", "\n", "\r\n"]),
    trail=st.sampled_from(["", " ", "\t\n", "  "]),
)
def test_round_trip_on_emoji_cjk_marks_controls_and_whitespace_runs(codec, text, lead, trail):
    document = lead + text + trail
    assert codec.decode(codec.encode(document)) == document
    assert codec.decode(codec.encode_batch([document, text])[0]) == document


@settings(max_examples=100, deadline=None)
@given(
    number=st.text(st.sampled_from("0123456789"), min_size=1, max_size=30),
    prefix=st.sampled_from(["", " ", "x", "$", "v"]),
)
def test_every_digit_is_its_own_piece(codec, number, prefix):
    pieces = codec.pieces(prefix + number + ",")
    digit_pieces = [piece for piece in pieces if any(c.isdigit() for c in piece)]
    assert digit_pieces == list(number)


def _source_files() -> list[Path]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    return [*sorted(stdlib.glob("[t-z]*.py"))[:15], *TAB_INDENTED_SOURCES[6:12]]


def test_indentation_of_real_source_survives_byte_for_byte(codec):
    files = _source_files()
    assert any("\n\t" in p.read_text() for p in files), "need tab-indented sources (C headers) for this test"
    for path in files:
        source = path.read_text()
        ids = codec.encode(source)
        assert codec.decode(ids).encode() == source.encode(), path
        pieces = [codec.processor.id_to_piece(i) for i in ids]
        rebuilt_lines = "".join(pieces).replace("\u2581", " ").split("\n")
        assert [line[: len(line) - len(line.lstrip())] for line in rebuilt_lines] == [
            line[: len(line) - len(line.lstrip())] for line in source.split("\n")
        ], path
        whitespace_bytes = {f"<0x{ord(c):02X}>" for c in " \t\n"}
        assert not whitespace_bytes & set(pieces), f"{path}: whitespace fell back to bytes"


def test_a_missing_model_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ModelError, match="no tokenizer.model"):
        Codec(tmp_path)
