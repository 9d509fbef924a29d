"""Real English prose for the quality tests, and one small LM trained on part of it.

The prose is the Python reference manual's text as the running Python ships it
(``pydoc_data.topics``: ~80 topics, ~460 KB of English with examples). Its paragraphs are
reflowed to one line each (the manual wraps at 70 columns), as web text would be. Topics at
even positions train the LM; the odd ones are never seen by it.

Handed out as fixtures: with ``--import-mode=importlib`` test modules cannot import conftest.
"""

from __future__ import annotations

import random
import re
import sysconfig
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from corpusmill.curation.executor import SerialExecutor
from corpusmill.curation.quality.lm_card import LMDirectory
from corpusmill.curation.quality.lm_train_stage import LMTrainOptions, train_lm


def reference_paragraphs(topic: str) -> list[str]:
    """The topic's prose paragraphs, one line each (indented blocks, i.e. code examples, left out)."""
    from pydoc_data.topics import topics

    paragraphs = []
    for block in re.split(r"\n\s*\n", topics[topic]):
        lines = block.splitlines()
        if not lines or lines[0].startswith(("   ", "*", "=", "-")) or set(lines[-1]) <= {"*", "=", "-", " "}:
            continue
        paragraphs.append(" ".join(line.strip() for line in lines))
    return [paragraph for paragraph in paragraphs if len(paragraph.split()) >= 12]


def topic_names(parity: int) -> list[str]:
    from pydoc_data.topics import topics

    return sorted(topics)[parity::2]


def write_documents(directory: Path, rows: dict[str, list], name: str = "part-0.parquet") -> Path:
    """One Parquet shard of documents (any extra columns kept) in a directory that opens as a dataset."""
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows), directory / name)
    return directory


def _shuffled_words(text: str, seed: int) -> str:
    words = text.split()
    random.Random(seed).shuffle(words)
    return " ".join(words)


@pytest.fixture(scope="session")
def shuffled_words() -> Callable[[str, int], str]:
    """The same words in a random order: fluent text made word salad."""
    return _shuffled_words


@pytest.fixture(scope="session")
def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


@pytest.fixture(scope="session")
def documents_dir() -> Callable[..., Path]:
    return write_documents


@pytest.fixture(scope="session")
def english_lm(tmp_path_factory: pytest.TempPathFactory) -> LMDirectory:
    """A 5-gram English LM over a 2000-piece model, trained on the even topics (a few seconds)."""
    root = tmp_path_factory.mktemp("english_lm")
    names = topic_names(0)
    texts = ["\n".join(reference_paragraphs(name)) for name in names]
    rows = {
        "id": [f"topic-{name}" for name in names] + ["fr-1", "fr-2"],
        "text": texts + ["Bonjour tout le monde, ceci est un texte en français.", "Encore un texte français."],
        "source": ["pydoc"] * len(names) + ["fr"] * 2,
        "lang": ["en"] * len(names) + ["fr"] * 2,
    }
    corpus = write_documents(root / "corpus", rows)
    options = LMTrainOptions(input=(str(corpus),), lang="en", out=str(root / "lm"), vocab_size=2000, held_out_every=4)
    train_lm(options, executor=SerialExecutor())
    return LMDirectory.open(root / "lm")


def _paragraphs(parity: int) -> list[str]:
    """Distinct paragraphs of the topics at one parity; for 1, none that an even topic has too
    (the manual repeats some paragraphs across topics)."""
    seen = {p for name in topic_names(0) for p in reference_paragraphs(name)} if parity else set()
    result = []
    for paragraph in (p for name in topic_names(parity) for p in reference_paragraphs(name)):
        if paragraph not in seen:
            seen.add(paragraph)
            result.append(paragraph)
    return result


@pytest.fixture(scope="session")
def paragraphs() -> Callable[[int], list[str]]:
    """Paragraphs of the topics at one parity (1: never seen by ``english_lm``)."""
    return _paragraphs
