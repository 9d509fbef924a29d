"""Translated text from gettext catalogs (``.mo`` files), labelled by their locale.

Why here: the group refiner (`lid_refiner`) trains on this machine's catalogs, and the
language-ID evaluation set (``benchmarks/lid_eval_set.py``) is built from them, so both read
messages the same way. A catalog's label is only as good as its translation: many messages
are copies of their English original, or translate a few words of a usage string whose
option names, commands and placeholders stay English. `translated_messages` keeps a message
only when most of its letters are in words that its original does not contain.
"""

from __future__ import annotations

import gettext
import re
from collections.abc import Iterator
from glob import glob
from pathlib import Path

from corpusmill.curation.classify.iso639 import normalize_language_code

MIN_MESSAGE_CHARS = 20
MIN_TRANSLATED_SHARE = 0.5
SKIPPED_LOCALES = frozenset({"en@shaw", "en@quot", "en@boldquot"})
"""Locales whose "translations" are English (Shavian script, typographic quotes)."""
_WORD = re.compile(r"[^\W\d_]+")


def catalog_pairs(path: str | Path) -> list[tuple[str, str]]:
    """(English original, translation) for every singular message of one ``.mo`` file; [] if unreadable."""
    try:
        with open(path, "rb") as handle:
            catalog = gettext.GNUTranslations(handle)._catalog
    except (OSError, UnicodeDecodeError, ValueError, IndexError):
        return []
    return [
        (original.split("\x04")[-1], translated)
        for original, translated in catalog.items()
        if isinstance(original, str) and original and isinstance(translated, str)
    ]


def translated_share(original: str, translated: str) -> float:
    """Share of the translation's letters in words that its English original does not contain."""
    copied = {word.lower() for word in _WORD.findall(original)}
    words = _WORD.findall(translated)
    letters = sum(map(len, words))
    return sum(len(word) for word in words if word.lower() not in copied) / letters if letters else 0.0


def translated_messages(path: str | Path) -> Iterator[str]:
    """A catalog's messages that are long enough and mostly translated, stripped, in file order."""
    for original, translated in catalog_pairs(path):
        message = translated.strip()
        if len(message) >= MIN_MESSAGE_CHARS and translated_share(original, message) >= MIN_TRANSLATED_SHARE:
            yield message


def locale_catalogs(locale_root: str | Path) -> Iterator[tuple[str, Path]]:
    """``(label, .mo path)`` for every catalog under ``locale_root/<locale>/LC_MESSAGES``, sorted by path."""
    for directory in sorted(glob(f"{locale_root}/*/LC_MESSAGES")):
        locale = Path(directory).parent.name
        if locale not in SKIPPED_LOCALES:
            label = normalize_language_code(locale)
            for path in sorted(Path(directory).glob("*.mo")):
                yield label, path
