"""CCNet's text normalisation, applied to every line a piece model or a KenLM model sees.

CCNet (``cc_net/text_normalizer.py``'s ``normalize``) trains and scores its language models
on lines that were stripped, lowercased, stripped of accents (NFD, combining marks dropped),
had every digit replaced by ``0``, Unicode punctuation mapped to ASCII and non-printing
characters removed. Training and scoring must normalise identically, so both go through
:func:`normalized_lines`.

Why not per-character Python: the same steps as one ``str.translate`` table (combining marks,
digits, punctuation and control characters at once) run in C; digits are mapped before
punctuation, as CCNet's order does (``１`` is a digit, so it becomes ``0``, not the ``"``
CCNet's punctuation table also lists). The punctuation table is CCNet's, as datatrove ships it.
Line structure is kept: a document is split on ``\\n`` first, every line normalised alone, and
lines left empty are dropped (they carry no words to score).
"""

from __future__ import annotations

import sys
import unicodedata
from functools import cache

# C0 and C1 control characters (CCNet's non-printing set); \n is the line separator, split on first.
_NON_PRINTING = [code for code in [*range(32), *range(127, 160)] if code != ord("\n")]


@cache
def _translation() -> dict[int, str | None]:
    """One table for every per-character step (built once per process: it scans all of Unicode)."""
    # Imported here: datatrove's perplexity module pulls in a deep tree (torch among it), and
    # every command's CLI imports this module without normalising a line.
    from datatrove.utils.perplexity import KenlmModel

    table: dict[int, str | None] = {ord(char): replacement for char, replacement in KenlmModel.unicode_punct.items()}
    for code in range(sys.maxunicode + 1):
        category = unicodedata.category(chr(code))
        if category == "Mn":
            table[code] = None
        elif category == "Nd":
            table[code] = "0"
    for code in _NON_PRINTING:
        table[code] = None
    return table


def normalized_lines(text: str) -> list[str]:
    """The document's non-empty lines, each normalised as CCNet normalises a line."""
    text = text.lower()
    if not text.isascii():
        text = unicodedata.normalize("NFD", text)
    text = text.translate(_translation())
    return [stripped for line in text.split("\n") if (stripped := line.strip())]
