"""CCNet's normalisation, step by step, as `lm train` and `quality` both apply it."""

from __future__ import annotations

from corpusmill.curation.quality.normalize import normalized_lines


def test_each_ccnet_step() -> None:
    assert normalized_lines("  Mixed CASE  ") == ["mixed case"]  # strip, lowercase
    assert normalized_lines("Ünïcödé façade, ÅNGSTRÖM") == ["unicode facade, angstrom"]  # accents removed
    assert normalized_lines("Call 555-0123 or ١٢٣ or １２") == ["call 000-0000 or 000 or 00"]  # every digit is 0
    assert normalized_lines("“Quoted” — and… ％「」") == ['"quoted"  -  and... %""']  # CCNet's punctuation table
    assert normalized_lines("tab\there\x00nul\x07bell\x9fcee") == ["tabherenulbellcee"]  # non-printing dropped


def test_line_structure_is_kept_and_empty_lines_dropped() -> None:
    text = "First line.\r\n\n   \n\x00\x01\nSecond line.\nThird\u2028same line"
    assert normalized_lines(text) == ["first line.", "second line.", "third\u2028same line"]
    assert normalized_lines("\x00\x00\n \n\t") == []
