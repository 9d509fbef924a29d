"""Rows whose text is not valid UTF-8, found before any Python string conversion.

Parquet files written elsewhere can hold string columns with invalid UTF-8 (Arrow does not
check on read); converting one row to Python raises, which would crash a batch. Stages that
read text into Python find those rows first and reject them with ``INVALID_UTF8``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

INVALID_UTF8 = "invalid_utf8"


def invalid_utf8_mask(texts: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """True where a row's text is not valid UTF-8 (the full check runs in C; rows are decoded only on failure)."""
    try:
        texts.validate(full=True)
        return np.zeros(len(texts), dtype=bool)
    except pa.ArrowInvalid:
        raw = pc.cast(texts, pa.binary()).to_pylist()
        return np.array([value is not None and not _decodes(value) for value in raw], dtype=bool)


def _decodes(value: bytes) -> bool:
    try:
        value.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False
