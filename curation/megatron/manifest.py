"""``tokenized.json`` of a tokenized output: every prefix with its component, counts and tokenizer.

Writer and reader of the format, side by side. Layout of a tokenize output directory::

    tokenized.json       this file: tokenizer (sha256, vocab, special tokens, dtype), prefixes;
                         written last, so its presence means the output is complete
    stats.json           the stage's accounting (curation.stats), like every stage
    shards/NAME.bin/.idx one Megatron indexed dataset per blend component
    rejects/             documents that could not be tokenized, with a reason

Prefix paths are relative to the directory, without the .bin / .idx suffix. The file
carries ``stage`` and ``config`` like every stage's completion marker
(``corpusmill.curation.stage``), so a re-run with the same settings does nothing.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from corpusmill.curation.atomic import read_json, write_json_atomic
from corpusmill.curation.dataset import MANIFEST_FILE, DatasetError

TOKENIZED_FILE = "tokenized.json"
FORMAT = "megatron-indexed"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class PrefixInfo:
    """One output prefix: the component it holds and what is in it."""

    prefix: str
    keys: dict[str, str]
    documents: int
    tokens: int
    text_bytes: int
    bin_bytes: int
    tokenizer_sha256: str


@dataclass
class TokenizedManifest:
    stage: str
    config: dict[str, Any]
    tokenizer: dict[str, Any]
    split_by: list[str]
    prefixes: list[PrefixInfo]
    format: str = FORMAT
    schema_version: int = SCHEMA_VERSION
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    @property
    def tokens(self) -> int:
        return sum(prefix.tokens for prefix in self.prefixes)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "prefixes": [asdict(prefix) for prefix in self.prefixes]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenizedManifest:
        fields = {key: value for key, value in data.items() if key != "prefixes"}
        return cls(prefixes=[PrefixInfo(**prefix) for prefix in data["prefixes"]], **fields)


def write_tokenized_manifest(root: Path, manifest: TokenizedManifest) -> None:
    """Write ``tokenized.json`` directly; the tokenize stage publishes it through its StageRun instead."""
    write_json_atomic(root / TOKENIZED_FILE, manifest.to_dict())


def read_tokenized_manifest(root: str | Path) -> TokenizedManifest:
    """The manifest of a finished tokenize output, or an error that says what the directory is instead."""
    path = Path(root) / TOKENIZED_FILE
    if not path.is_file():
        dataset_manifest = Path(root) / MANIFEST_FILE
        if dataset_manifest.is_file():
            found = read_json(dataset_manifest)
            if found.get("format") == FORMAT:
                raise DatasetError(
                    f"{root}: tokenized by an older corpusmill ({MANIFEST_FILE}, not {TOKENIZED_FILE}); "
                    "re-run `corpusmill tokenize`"
                )
            raise DatasetError(
                f"{root}: holds a {found.get('stage')!r} document dataset, not tokenized shards; "
                "run `corpusmill tokenize` on it first"
            )
        raise DatasetError(f"{root}: no {TOKENIZED_FILE}; run (or finish) `corpusmill tokenize` into it first")
    data = read_json(path)
    if data.get("format") != FORMAT:
        raise DatasetError(f"{path}: format {data.get('format')!r} is not {FORMAT!r}; re-run `corpusmill tokenize`")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise DatasetError(
            f"{path}: schema_version {data.get('schema_version')!r} is not {SCHEMA_VERSION}; re-run tokenize"
        )
    return TokenizedManifest.from_dict(data)
