"""The tokenized prefixes a blend may draw from, checked to be intact and made with one tokenizer.

Mixing shards encoded by different tokenizers trains on garbage without any error from
the trainer, so every prefix's tokenizer sha256 must agree (with ``--tokenizer`` when
given); and a prefix whose files no longer match its manifest is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corpusmill.curation.errors import CorpusmillError
from corpusmill.curation.megatron.components import SPLIT, TRAIN
from corpusmill.curation.megatron.encoder import file_sha256
from corpusmill.curation.megatron.indexed import IndexedFormatError, IndexedReader, bin_path
from corpusmill.curation.megatron.manifest import read_tokenized_manifest
from corpusmill.tokenizer.codec import model_path


class BlendError(CorpusmillError, ValueError):
    """Shards and spec cannot be blended as asked; the message says why and what to do."""


@dataclass(frozen=True)
class AvailablePrefix:
    path: Path
    name: str
    keys: Mapping[str, str] = field(hash=False)
    documents: int
    tokens: int
    tokenizer_sha256: str

    @property
    def split(self) -> str:
        return self.keys.get(SPLIT, TRAIN)

    @property
    def source(self) -> str:
        return self.keys.get("source", self.name)


@dataclass(frozen=True)
class Inventory:
    prefixes: tuple[AvailablePrefix, ...]
    tokenizer: Mapping[str, Any]
    split_by: Mapping[str, tuple[str, ...]]

    def directories_without(self, key: str) -> list[str]:
        return [directory for directory, keys in self.split_by.items() if key not in keys]


def _short(sha256: str) -> str:
    return sha256[:12]


def _check_files(prefix: AvailablePrefix, bin_bytes: int) -> None:
    size = bin_path(prefix.path).stat().st_size if bin_path(prefix.path).is_file() else None
    try:
        reader = IndexedReader(prefix.path)
    except IndexedFormatError as error:
        raise BlendError(f"{error}; re-run `corpusmill tokenize` for this output") from None
    found = (size, reader.num_documents, reader.num_tokens)
    if found != (bin_bytes, prefix.documents, prefix.tokens):
        raise BlendError(
            f"{prefix.path}: files hold {found[1]:,} documents / {found[2]:,} tokens in {found[0]} bytes, but the "
            f"manifest says {prefix.documents:,} / {prefix.tokens:,} in {bin_bytes}; they were changed after "
            "tokenize wrote them: re-run tokenize"
        )


def load_inventory(shard_dirs: Sequence[str | Path], tokenizer_model: str | Path | None = None) -> Inventory:
    """Read every directory's manifest, check its files, and refuse mixed tokenizers."""
    expected = file_sha256(model_path(tokenizer_model)) if tokenizer_model is not None else None
    prefixes, split_by, tokenizer, seen = [], {}, None, {}
    for directory in shard_dirs:
        root = Path(directory)
        manifest = read_tokenized_manifest(root)
        split_by[str(root)] = tuple(manifest.split_by)
        tokenizer = tokenizer or manifest.tokenizer
        for info in manifest.prefixes:
            name = Path(info.prefix).name if len(shard_dirs) == 1 else f"{root.name}/{Path(info.prefix).name}"
            prefix = AvailablePrefix(
                (root / info.prefix).resolve(), name, info.keys, info.documents, info.tokens, info.tokenizer_sha256
            )
            seen.setdefault(info.tokenizer_sha256, []).append(prefix.name)
            _check_files(prefix, info.bin_bytes)
            prefixes.append(prefix)
    if expected is not None and set(seen) != {expected}:
        wrong = {sha: names for sha, names in seen.items() if sha != expected}
        raise BlendError(
            f"refusing to blend: --tokenizer has sha256 {_short(expected)}..., but "
            + "; ".join(
                f"{', '.join(names[:3])}{' ...' if len(names) > 3 else ''} were tokenized with {_short(sha)}..."
                for sha, names in wrong.items()
            )
            + "; re-tokenize them with this tokenizer"
        )
    if len(seen) > 1:
        raise BlendError(
            "refusing to blend shards tokenized with different tokenizers: "
            + "; ".join(f"sha256 {_short(sha)}... for {', '.join(names[:3])}" for sha, names in seen.items())
            + "; re-tokenize them all with one tokenizer"
        )
    if not prefixes:
        raise BlendError(f"{', '.join(map(str, shard_dirs))}: no tokenized prefixes to blend")
    return Inventory(tuple(prefixes), tokenizer or {}, split_by)
