"""The classify stage's vocabulary: the columns it adds and the values they take.

Owned here alone; every later stage that reads labels (tokenizer sampling, the Megatron
components, blends) imports these names instead of spelling the strings again.
"""

from __future__ import annotations

import pyarrow as pa

LANG = "lang"
LANG_SCORE = "lang_score"
LANG_MIX = "lang_mix"
CATEGORY = "category"
CODE_LANG = "code_lang"
CODE_LANG_SOURCE = "code_lang_source"

LANG_MIX_TYPE = pa.list_(pa.struct([("lang", pa.string()), ("share", pa.float32())]))
"""Top 3 languages of a document's paragraphs with their share of its characters; null below two paragraphs."""

OUTPUT_SCHEMA = pa.schema(
    [
        (LANG, pa.string()),
        (LANG_SCORE, pa.float32()),
        (LANG_MIX, LANG_MIX_TYPE),
        (CATEGORY, pa.string()),
        (CODE_LANG, pa.string()),
        (CODE_LANG_SOURCE, pa.string()),
    ]
)
# The columns that say which part of a blend a document belongs to.
LABEL_COLUMNS = (CATEGORY, LANG, CODE_LANG)

ENGLISH = "english"
MULTILINGUAL = "multilingual"
CODE = "code"
UNKNOWN = "unknown"
"""Prose whose language is ``und``: not known to be English, nor any other language, so in neither bucket."""
CATEGORIES = (ENGLISH, MULTILINGUAL, CODE, UNKNOWN)
CODE_LANG_SOURCES = ("path", "shebang", "content")

UNDETERMINED = "und"
"""``lang`` of a document whose language is not known (ISO 639-2's code for it)."""
