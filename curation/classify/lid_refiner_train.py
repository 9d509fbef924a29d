"""Training the group refiner (`lid_refiner`) on this machine's translated gettext catalogs.

Why catalogs: they are the one large body of text in many small languages that every Debian
machine has, each file labelled by its locale. Consecutive translated messages of one
catalog (`gettext_catalogs.translated_messages`) are joined into chunks of
``chunk_chars`` characters, labelled by the locale. Why balanced: a big language has ten
times the catalogs of its small neighbour, and a model trained on the raw counts learns the
prior, not the difference: every class is cut to ``max_chunks`` chunks, and a small one is
repeated up to ``max_repeat`` times. A group member with fewer than ``min_chunks`` chunks is
left out of its group (a refiner that has seen two Swahili chunks must not relabel
Swahili), and a group left with one member is dropped; the card lists the groups that stay.

Training is one fastText thread with a fixed seed (by default), so the same catalogs give the same model.
``exclude_domains`` (catalog file names, e.g. ``coreutils.mo``) leaves catalogs out, in every
locale: ``benchmarks/lid_compare.py`` cross-validates the refiner by catalog with it.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa

from corpusmill.curation.classify.fasttext_backend import import_fasttext
from corpusmill.curation.classify.gettext_catalogs import locale_catalogs, translated_messages
from corpusmill.curation.classify.langid import DEFAULT_LID_MAX_CHARS, prepare_texts
from corpusmill.curation.classify.lid_refiner import LABEL_PREFIX, refiner_card_path
from corpusmill.curation.errors import ConfigError

REFINER_GROUPS: tuple[tuple[str, ...], ...] = (
    ("hr", "bs", "sr"),
    ("ms", "id"),
    ("es", "ast", "gl", "an"),
    ("de", "nds"),
    ("nl", "af", "li"),
    ("hi", "mai", "mr", "ne"),
    ("tr", "tt", "az", "crh"),
    ("be", "pl"),
    ("it", "fur"),
)
"""Languages the general identifiers confuse with each other (docs/BENCHMARKS.md, "Language ID").

Not a group: nb/nn (the refiner read Nynorsk paragraphs worse than the fusion does: nn 0.86 -> 0.77
cross-validated), is/fo, sw/rw and bo/dz (too little catalog text in fo, sw and bo to learn them).
"""


class Chunk(NamedTuple):
    """One training text: its locale's code, its catalog's file name, the joined messages."""

    label: str
    domain: str
    text: str


@dataclass(frozen=True)
class RefinerSettings:
    """How the refiner is trained; recorded in its card."""

    chunk_chars: tuple[int, int] = (250, 1500)
    max_chunks: int = 3000
    max_repeat: int = 5
    min_chunks: int = 40
    dim: int = 32
    epoch: int = 20
    lr: float = 0.5
    minn: int = 2
    maxn: int = 4
    bucket: int = 500_000
    quantize_cutoff: int = 100_000
    seed: int = 0
    threads: int = 1
    """fastText threads: 1 makes training reproducible byte for byte; more is faster (cross-validation)."""


def catalog_chunks(
    locale_root: str | Path, languages: Iterable[str], chunk_chars: tuple[int, int] = RefinerSettings.chunk_chars
) -> list[Chunk]:
    """Every catalog's translated messages, in ``languages``, joined into chunks of ``chunk_chars``."""
    wanted = set(languages)
    low, high = chunk_chars
    chunks: list[Chunk] = []
    for label, path in locale_catalogs(locale_root):
        if label not in wanted:
            continue
        current = ""
        for message in translated_messages(path):
            current += message + "\n"
            if len(current) >= low:
                chunks.append(Chunk(label, path.name, current[:high]))
                current = ""
    return chunks


def trainable_groups(counts: Counter[str], min_chunks: int) -> list[tuple[str, ...]]:
    """``REFINER_GROUPS`` without the members too rare to learn, and without groups left with one member."""
    groups = [tuple(code for code in group if counts[code] >= min_chunks) for group in REFINER_GROUPS]
    return [group for group in groups if len(group) >= 2]


def balanced(chunks: list[Chunk], settings: RefinerSettings) -> list[Chunk]:
    """At most ``max_chunks`` per label; a smaller label repeated up to ``max_repeat`` times (not past the cap)."""
    by_label: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        by_label.setdefault(chunk.label, []).append(chunk)
    picked: list[Chunk] = []
    for label, items in sorted(by_label.items()):
        random.Random(f"{settings.seed}/{label}").shuffle(items)
        wanted = min(settings.max_chunks, settings.max_repeat * len(items))
        picked += (items * (wanted // len(items) + 1))[:wanted]
    random.Random(settings.seed).shuffle(picked)
    return picked


def train_refiner(
    chunks: list[Chunk],
    out_path: str | Path,
    settings: RefinerSettings | None = None,
    exclude_domains: Iterable[str] = (),
) -> dict:
    """Train on ``chunks`` (less the excluded catalogs), write the ``.ftz`` and its card; return the card."""
    settings = settings or RefinerSettings()
    excluded = set(exclude_domains)
    kept = [chunk for chunk in chunks if chunk.domain not in excluded]
    counts = Counter(chunk.label for chunk in kept)
    groups = trainable_groups(counts, settings.min_chunks)
    if not groups:
        raise ConfigError(
            f"no refiner group has two languages with {settings.min_chunks}+ chunks of catalog text; "
            "is the locale directory right (gettext .mo files under LOCALE/<locale>/LC_MESSAGES)?"
        )
    members = {code for group in groups for code in group}
    training = balanced([chunk for chunk in kept if chunk.label in members], settings)
    fasttext_new = import_fasttext()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    prepared = prepare_texts(pa.array([chunk.text for chunk in training], pa.large_string()), DEFAULT_LID_MAX_CHARS)
    with tempfile.TemporaryDirectory() as scratch:
        train_file = Path(scratch) / "train.txt"
        with train_file.open("w", encoding="utf-8") as handle:
            for chunk, text in zip(training, prepared):
                handle.write(f"{LABEL_PREFIX}{chunk.label} {text}\n")
        model = fasttext_new.train_supervised(
            input=str(train_file),
            dim=settings.dim,
            epoch=settings.epoch,
            lr=settings.lr,
            minn=settings.minn,
            maxn=settings.maxn,
            wordNgrams=1,
            minCount=1,
            bucket=settings.bucket,
            thread=settings.threads,
            seed=settings.seed,
            verbose=0,
        )
        model.quantize(
            input=str(train_file), retrain=True, cutoff=settings.quantize_cutoff, qnorm=True, thread=settings.threads
        )
    model.save_model(str(out_path))
    card = {
        "groups": [list(group) for group in groups],
        "chunks": {code: counts[code] for code in sorted(members)},
        "catalogs": len({chunk.domain for chunk in kept if chunk.label in members}),
        "excluded_catalogs": sorted(excluded),
        "settings": asdict(settings),
        "model_bytes": out_path.stat().st_size,
    }
    text = json.dumps(card, indent=1, sort_keys=True) + "\n"
    refiner_card_path(out_path).write_text(text)
    return json.loads(text)  # as a reader of the card sees it
