"""A resolved blend in the two forms Megatron-LM reads.

``data_path.txt``  ``w1 p1 w2 p2 ...`` (weights normalised, prefixes absolute): pass it as
                   ``--data-args-path data_path.txt`` or ``--data-path $(cat data_path.txt)``,
                   with ``--split`` to carve validation data out of the same prefixes.
``per_split.json`` ``{"train": [...], "valid": [...], "test": [...]}`` in the same word form
                   (null where tokenize held nothing out): ``--per-split-data-args-path``.
"""

from __future__ import annotations

from pathlib import Path

from corpusmill.curation.atomic import atomic_path, write_json_atomic
from corpusmill.curation.blend.resolve import TEST, TRAIN, VALID, Draw, Resolution

DATA_PATH_FILE = "data_path.txt"
PER_SPLIT_FILE = "per_split.json"


def data_path_words(draws: list[Draw]) -> list[str]:
    total = sum(draw.weight for draw in draws)
    words = []
    for draw in draws:
        words += [f"{draw.weight / total:.12g}", str(draw.prefix.path)]
    return words


def write_megatron_args(resolution: Resolution, out_dir: Path) -> list[Path]:
    data_path = out_dir / DATA_PATH_FILE
    with atomic_path(data_path) as tmp:
        tmp.write_text(" ".join(data_path_words(resolution.splits[TRAIN])) + "\n")
    per_split = out_dir / PER_SPLIT_FILE
    write_json_atomic(
        per_split,
        {split: data_path_words(resolution.splits[split]) or None for split in (TRAIN, VALID, TEST)},
    )
    return [data_path, per_split]
