"""``trainer.json``: a resolved blend for the bundled trainer, writer and reader side by side.

Format (version 1)::

    {"format": "corpusmill-blend", "version": 1,
     "spec": "nemotron4", "phase": "pretrain", "planned_tokens": 8e12,
     "tokenizer": {"sha256": "...", "vocab_size": 32000, "eod_id": 2, "bos_id": null, "dtype": "uint16"},
     "splits": {"train": [{"prefix": "../shards/english.en.wiki", "weight": 0.41, "group": "english",
                           "documents": 1200, "tokens": 3400000, "tokens_drawn": 3.2e12, "epochs": 941176.5}],
                "valid": [], "test": []},
     "not_drawn": [{"prefix": "../shards/code.Go.github", "tokens": 1200, "reason": "no group selects it"}],
     "warnings": ["source `wiki` is repeated 5.2 epochs in phase pretrain, above its cap of 4 ..."]}

``prefix`` is a Megatron indexed-dataset prefix (``.bin`` / ``.idx`` appended), relative
to the JSON file's directory or absolute. Within a split, weights sum to 1 and are the
probability a training sequence is drawn from that prefix, whatever the sequence length;
the other entry fields, ``not_drawn`` and ``warnings`` (what ``blend resolve`` warned about) are
informational.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corpusmill.curation.atomic import read_json, write_json_atomic
from corpusmill.curation.blend.inventory import BlendError
from corpusmill.curation.blend.resolve import SPLITS, Resolution
from corpusmill.curation.megatron.encoder import file_sha256
from corpusmill.tokenizer.codec import model_path

FORMAT = "corpusmill-blend"
VERSION = 1
TRAINER_FILE = "trainer.json"
_WEIGHT_TOLERANCE = 1e-6


def _relative(path: Path, directory: Path) -> str:
    try:
        return os.path.relpath(path, directory)
    except ValueError:  # another drive on Windows: no relative path exists
        return str(path)


def trainer_blend(resolution: Resolution, json_dir: Path) -> dict[str, Any]:
    json_dir = json_dir.resolve()
    splits = {}
    for split in SPLITS:
        splits[split] = [
            {
                "prefix": _relative(draw.prefix.path, json_dir),
                "weight": draw.weight,
                "group": draw.group,
                "documents": draw.prefix.documents,
                "tokens": draw.prefix.tokens,
                "tokens_drawn": draw.tokens_drawn,
                "epochs": draw.epochs,
            }
            for draw in resolution.splits[split]
        ]
    tokenizer = {key: value for key, value in resolution.tokenizer.items() if key != "model_path"}
    return {
        "format": FORMAT,
        "version": VERSION,
        "spec": resolution.spec,
        "phase": resolution.phase,
        "planned_tokens": resolution.total_tokens,
        "tokenizer": tokenizer,
        "splits": splits,
        "not_drawn": [
            {"prefix": _relative(prefix.path, json_dir), "tokens": prefix.tokens, "reason": reason}
            for prefix, reason in resolution.not_drawn
        ],
        "warnings": list(resolution.warnings),
    }


def write_trainer_blend(resolution: Resolution, path: Path) -> Path:
    write_json_atomic(path, trainer_blend(resolution, path.parent))
    return path


@dataclass(frozen=True)
class TrainerBlend:
    """What a trainer needs: absolute prefixes and normalised weights per split, and the tokenizer."""

    spec: str
    phase: str
    tokenizer: dict[str, Any]
    splits: dict[str, list[tuple[Path, float]]]
    planned_tokens: float  # the phase's token budget the blend was resolved for


def read_trainer_blend(path: str | Path, tokenizer_model: str | Path | None = None) -> TrainerBlend:
    """Load ``trainer.json``; with ``tokenizer_model``, refuse a blend made with another tokenizer."""
    path = Path(path)
    data = read_json(path)
    if data.get("format") != FORMAT or data.get("version") != VERSION:
        raise BlendError(f"{path}: not a {FORMAT} version {VERSION} file; re-run `corpusmill blend resolve`")
    if tokenizer_model is not None:
        actual = file_sha256(model_path(tokenizer_model))
        if actual != data["tokenizer"]["sha256"]:
            raise BlendError(
                f"{path}: shards were tokenized with sha256 {data['tokenizer']['sha256'][:12]}..., but "
                f"{tokenizer_model} has {actual[:12]}...; train with the tokenizer the shards were made with"
            )
    splits = {}
    for split in SPLITS:
        entries = data["splits"].get(split, [])
        total = sum(entry["weight"] for entry in entries)
        if entries and not abs(total - 1) <= _WEIGHT_TOLERANCE:  # NaN weights sum to NaN: refused too
            raise BlendError(f"{path}: {split} weights sum to {total}, not 1; re-run `corpusmill blend resolve`")
        splits[split] = [((path.parent / entry["prefix"]).resolve(), entry["weight"]) for entry in entries]
    return TrainerBlend(data["spec"], data["phase"], data["tokenizer"], splits, float(data["planned_tokens"]))
