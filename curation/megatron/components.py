"""Which blend component, and so which output prefix, each document belongs to.

A component is a document's values for the ``--split-by`` keys (default category,
language, source) plus its split: ``train``, or a held-out ``valid`` / ``test`` drawn by
a hash of the document id. ``language`` is derived: ``code_lang`` for code documents,
``lang`` for the rest, so one key separates natural and programming languages.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from corpusmill.curation.classify.labels import CATEGORY, CODE, CODE_LANG, LABEL_COLUMNS, LANG
from corpusmill.curation.dataset import DatasetError

LANGUAGE = "language"
DEFAULT_KEYS = (CATEGORY, LANGUAGE, "source")
SPLIT = "split"
TRAIN, VALID, TEST = "train", "valid", "test"
MISSING_VALUE = "unknown"
_UNSAFE = re.compile(r"[^A-Za-z0-9_+-]+")
_MAX_NAME_PART = 48


def key_columns(keys: Sequence[str]) -> list[str]:
    """The input columns the keys read."""
    columns: list[str] = []
    for key in keys:
        for column in LABEL_COLUMNS if key == LANGUAGE else (key,):
            if column not in columns:
                columns.append(column)
    return columns


def check_key_columns(column_names: Sequence[str], keys: Sequence[str], location: str) -> None:
    if SPLIT in keys:
        raise DatasetError(f"--split-by {SPLIT}: `{SPLIT}` is reserved for held-out splits; rename that column")
    missing = [column for column in key_columns(keys) if column not in column_names]
    if missing:
        raise DatasetError(
            f"{location}: no column(s) {missing}, needed by --split-by {','.join(keys)}; run `corpusmill classify` "
            f"on it first, or split by columns it has ({', '.join(column_names)})"
        )


def _as_strings(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    return pc.fill_null(pc.cast(column, pa.string()), MISSING_VALUE)


def component_values(table: pa.Table, keys: Sequence[str]) -> list[tuple[str, ...]]:
    """Each row's values for ``keys``, as strings (null becomes ``unknown``)."""
    columns = []
    for key in keys:
        if key == LANGUAGE:
            is_code = pc.fill_null(pc.equal(table[CATEGORY], CODE), False)
            columns.append(_as_strings(pc.if_else(is_code, table[CODE_LANG], table[LANG])).to_pylist())
        else:
            columns.append(_as_strings(table[key]).to_pylist())
    return list(zip(*columns))


def holdout_splits(ids: Sequence[str], valid_fraction: float, test_fraction: float) -> list[str]:
    """``valid``/``test``/``train`` per id from a hash of the id: stable across runs, shards and workers."""
    if valid_fraction == 0 and test_fraction == 0:
        return [TRAIN] * len(ids)
    scale = float(2**64)
    splits = []
    for document_id in ids:
        position = xxhash.xxh64_intdigest(document_id) / scale
        splits.append(
            VALID if position < valid_fraction else TEST if position < valid_fraction + test_fraction else TRAIN
        )
    return splits


def prefix_names(components: Sequence[dict[str, str]]) -> list[str]:
    """File-safe, readable, unique names: values joined by dots, held-out splits suffixed.

    Values are reduced to ``[A-Za-z0-9_+-]``; where that makes two components collide
    (or loses the whole value), a short hash of the full component keeps names unique.
    """
    readable = [_readable_name(component) for component in components]
    clashes = Counter(readable)
    names = []
    for component, name in zip(components, readable):
        if clashes[name] > 1 or any(not _UNSAFE.sub("", value) for value in component.values()):
            digest = hashlib.sha256(json.dumps(component, sort_keys=True).encode()).hexdigest()[:8]
            name = f"{name}-{digest}"
        names.append(name)
    return names


def _readable_name(component: dict[str, str]) -> str:
    parts = [
        _UNSAFE.sub("_", value).strip("_")[:_MAX_NAME_PART] or "_" for key, value in component.items() if key != SPLIT
    ]
    split = component.get(SPLIT, TRAIN)
    return ".".join(parts + ([] if split == TRAIN else [split]))
