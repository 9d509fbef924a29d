"""The tokenizer card: ``card.json`` beside a trained model, what it records and how to read it.

`corpusmill tokenizer train` writes it last (its presence means the model is complete),
and everything downstream that needs a tokenizer's facts reads them here: the trainer
takes its vocabulary size from it. The card holds the settings the model was trained
with (the vocabulary size among them), SentencePiece's options, the special pieces' ids,
what it was trained on (the sample's path, fingerprint, size and composition), the
model file's sha256, and the cost of training (wall time, peak memory, machine).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from corpusmill.curation.errors import CorpusmillError, MissingFileError

CARD_FILE = "card.json"
STAGE = "tokenizer_train"


class CardError(CorpusmillError, ValueError):
    """A file is not a tokenizer card written by `corpusmill tokenizer train`; the message says which part."""


@dataclass(frozen=True)
class TokenizerCard:
    """One trained tokenizer's card, as written and read."""

    stage: str
    config: dict[str, Any]  # what identifies the run: the settings that change the model, the sample's fingerprint
    fingerprint: dict[str, Any]  # the same, under the name cards have always used
    settings: dict[str, Any]
    sentencepiece_options: dict[str, Any]
    special_ids: dict[str, int]  # piece -> id; -1 where the model has none
    sample: dict[str, Any]
    model_sha256: str
    sentences_seen: int
    sentences_loaded: int
    wall_seconds: float
    peak_rss_bytes: int
    estimated_peak_bytes: int
    machine: dict[str, Any]

    @property
    def vocab_size(self) -> int:
        """Pieces in the vocabulary: the embedding rows a model trained on its ids needs."""
        return self.settings["vocab_size"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "tokenizer card") -> TokenizerCard:
        """Check every part the card must hold, naming the first one missing or malformed."""
        if not isinstance(data, dict):
            raise CardError(f"{where}: not a tokenizer card (a JSON object); {_FIX}")
        settings = data.get("settings")
        vocab_size = settings.get("vocab_size") if isinstance(settings, dict) else None
        if not _is_int(vocab_size) or vocab_size <= 0:
            raise CardError(f"{where} has no positive integer 'vocab_size' in its settings; {_FIX}")
        for field in fields(cls):
            expected = _KINDS[field.type]
            value = data.get(field.name)
            if isinstance(value, bool) or not isinstance(value, expected):
                raise CardError(f"{where}: `{field.name}` is missing or not a {field.type}; {_FIX}")
        if not all(isinstance(k, str) and _is_int(v) for k, v in data["special_ids"].items()):
            raise CardError(f"{where}: `special_ids` must map piece names to integer ids; {_FIX}")
        if data["stage"] != STAGE:
            raise CardError(f"{where} was written by {data['stage']!r}, not `corpusmill tokenizer train`; {_FIX}")
        return cls(**{field.name: data[field.name] for field in fields(cls)})

    @classmethod
    def read(cls, path: str | Path) -> TokenizerCard:
        """The card at ``path``: a ``card.json``, or the `tokenizer train` output directory holding it."""
        path = Path(path)
        card_path = path / CARD_FILE if path.is_dir() else path
        if not card_path.is_file():
            raise MissingFileError(f"{path}: no {CARD_FILE} here; {_FIX}")
        try:
            data = json.loads(card_path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CardError(f"{card_path}: not JSON ({error}); {_FIX}") from None
        return cls.from_dict(data, str(card_path))


_FIX = "pass the card.json that `corpusmill tokenizer train` wrote next to the model"
# The JSON kinds each annotated field type reads back as (an integral float stays a float).
_KINDS: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "int": int,
    "float": (int, float),
    "dict[str, Any]": dict,
    "dict[str, int]": dict,
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
