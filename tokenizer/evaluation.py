"""Tokenizer quality per language: compression, fertility, byte fallback, vocabulary use, round trip.

Why these numbers: bytes per token is what a model's context and compute are paid in;
tokens per word (fertility) shows which languages a vocabulary serves badly; the
byte-fallback rate shows characters it never learned; the used share of the vocabulary
shows pieces that only cost embedding rows; and every evaluated document must come back
byte for byte (``decode(encode(x)) == x``), or training data is silently altered.

Words are whitespace-separated runs, so tokens per word is not meaningful for languages
written without spaces (zh, ja, th); bytes per token is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from corpusmill.curation.classify.labels import CODE
from corpusmill.tokenizer.codec import Codec
from corpusmill.tokenizer.sampling import group_keys

MAX_FAILURE_IDS = 20


@dataclass
class GroupMetrics:
    """Sums over one language's documents; ratios are computed at the end."""

    docs: int = 0
    bytes: int = 0
    words: int = 0
    tokens: int = 0
    byte_fallback_tokens: int = 0
    roundtrip_failures: int = 0
    failed_ids: list[str] = field(default_factory=list)

    def add(self, other: GroupMetrics) -> None:
        for name in ("docs", "bytes", "words", "tokens", "byte_fallback_tokens", "roundtrip_failures"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed_ids = (self.failed_ids + other.failed_ids)[:MAX_FAILURE_IDS]

    def summary(self) -> dict[str, Any]:
        tokens = max(self.tokens, 1)
        return {
            **asdict(self),
            "bytes_per_token": self.bytes / tokens,
            "tokens_per_word": self.tokens / max(self.words, 1),
            "byte_fallback_rate": self.byte_fallback_tokens / tokens,
        }


@dataclass
class ModelMetrics:
    """One model's metrics over a set of documents: per natural language, per code language, used ids."""

    languages: dict[str, GroupMetrics] = field(default_factory=dict)
    code_languages: dict[str, GroupMetrics] = field(default_factory=dict)
    used_ids: np.ndarray | None = None  # bool per vocabulary id

    def add(self, other: ModelMetrics) -> None:
        for mine, theirs in ((self.languages, other.languages), (self.code_languages, other.code_languages)):
            for name, metrics in theirs.items():
                mine.setdefault(name, GroupMetrics()).add(metrics)
        if other.used_ids is not None:
            self.used_ids = other.used_ids.copy() if self.used_ids is None else self.used_ids | other.used_ids


def measure_batch(codec: Codec, table: pa.Table) -> ModelMetrics:
    """Metrics of one Arrow batch of classified documents."""
    texts = table["text"].to_pylist()
    ids = table["id"].to_pylist()
    categories, languages = group_keys(table)
    is_byte = codec.byte_piece_mask
    used = np.zeros(codec.vocab_size, dtype=bool)
    result = ModelMetrics(used_ids=used)
    for doc_id, text, category, language, tokens in zip(ids, texts, categories, languages, codec.encode_batch(texts)):
        groups = result.code_languages if category == CODE else result.languages
        metrics = groups.setdefault(language, GroupMetrics())
        token_array = np.asarray(tokens, dtype=np.int64)
        used[token_array] = True
        metrics.docs += 1
        metrics.bytes += len(text.encode())
        metrics.words += len(text.split())
        metrics.tokens += len(tokens)
        metrics.byte_fallback_tokens += int(is_byte[token_array].sum())
        if codec.decode(tokens) != text:
            metrics.roundtrip_failures += 1
            if len(metrics.failed_ids) < MAX_FAILURE_IDS:
                metrics.failed_ids.append(doc_id)
    return result


def model_report(metrics: ModelMetrics, vocab_size: int) -> dict[str, Any]:
    everything = GroupMetrics()
    for group in (*metrics.languages.values(), *metrics.code_languages.values()):
        everything.add(group)
    used = int(metrics.used_ids.sum()) if metrics.used_ids is not None else 0
    return {
        "vocab_size": vocab_size,
        "vocab_used": used,
        "vocab_used_share": used / vocab_size,
        "total": everything.summary(),
        "languages": {name: m.summary() for name, m in sorted(metrics.languages.items())},
        "code_languages": {name: m.summary() for name, m in sorted(metrics.code_languages.items())},
    }


def format_side_by_side(reports: Mapping[str, Mapping[str, Any]], limit: int = 25) -> str:
    """The fertility table: bytes/token and tokens/word per language, one column pair per model."""
    names = list(reports)
    header = f"{'group':<26}{'docs':>7}{'MB':>8}" + "".join(f"{'B/tok ' + n:>16}{'tok/word ' + n:>19}" for n in names)
    lines = [header]
    first = reports[names[0]]

    def row(label: str, key: str, group: str | None) -> str:
        entries = [r["total"] if group is None else r[key][group] for r in reports.values()]
        cells = "".join(f"{e['bytes_per_token']:>16.2f}{e['tokens_per_word']:>19.2f}" for e in entries)
        return f"{label:<26}{entries[0]['docs']:>7,}{entries[0]['bytes'] / 1e6:>8.2f}{cells}"

    for key, title in (("languages", "lang"), ("code_languages", "code")):
        ranked = sorted(first[key], key=lambda name: -first[key][name]["bytes"])
        lines += [row(f"{title} {name}", key, name) for name in ranked[:limit]]
        if len(ranked) > limit:
            lines.append(f"... {len(ranked) - limit} more {title} groups in the report")
    lines.append(row("all", "", None))
    for name, report in reports.items():
        total = report["total"]
        lines.append(
            f"{name}: vocab {report['vocab_size']:,}, used {report['vocab_used_share']:.1%}, "
            f"byte fallback {total['byte_fallback_rate']:.3%} of tokens, "
            f"round-trip failures {total['roundtrip_failures']} of {total['docs']:,} documents"
        )
    return "\n".join(lines)
