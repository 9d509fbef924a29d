"""Small classified datasets of real text from this machine, and one tiny model trained on them.

Labels are set from provenance (a catalog's locale, a file's language), so these tests do
not depend on the classifier.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from corpusmill.curation.dataset import Manifest, ShardWriter, describe_columns, write_manifest
from corpusmill.pipelines.demo_corpus import read_mo_translations

LICENSES = Path("/usr/share/common-licenses")
LOCALES = Path("/usr/share/locale")
CATALOG_LANGUAGES = ("de", "fr", "ru", "ja", "uk")
# Real tab-indented sources (Linux UAPI headers, present wherever a C toolchain is).
TAB_INDENTED_SOURCES = [p for p in sorted(Path("/usr/include/linux").glob("*.h")) if "\n\t" in p.read_text()][:12]
TINY_VOCAB = 1200
SCHEMA = pa.schema(
    [(name, pa.string()) for name in ("id", "text", "source", "lang")]
    + [("lang_score", pa.float32())]
    + [(name, pa.string()) for name in ("category", "code_lang", "code_lang_source", "origin")]
)


def _prose(doc_id: str, text: str, lang: str) -> dict[str, Any]:
    category = "english" if lang == "en" else "multilingual"
    return {
        "id": doc_id,
        "text": text,
        "source": "docs",
        "lang": lang,
        "lang_score": 0.99,
        "category": category,
        "code_lang": None,
        "code_lang_source": None,
        "origin": doc_id,
    }


def _code(doc_id: str, text: str, code_lang: str) -> dict[str, Any]:
    return {
        "id": doc_id,
        "text": text,
        "source": "code",
        "lang": "und",
        "lang_score": 0.0,
        "category": "code",
        "code_lang": code_lang,
        "code_lang_source": "extension",
        "origin": doc_id,
    }


def real_documents() -> list[dict[str, Any]]:
    """Licences (English), gettext catalogs (five languages), stdlib Python, Go and C headers."""
    docs = [_prose(f"license/{p.name}", p.read_text(), "en") for p in sorted(LICENSES.glob("*")) if p.is_file()][:8]
    for lang in CATALOG_LANGUAGES:
        for catalog in sorted((LOCALES / lang / "LC_MESSAGES").glob("*.mo"))[:6]:
            try:
                lines = [t for t in read_mo_translations(catalog) if t.strip()]
            except (ValueError, LookupError, UnicodeDecodeError):
                continue
            for part in range(0, min(len(lines), 120), 40):
                docs.append(_prose(f"{lang}/{catalog.stem}/{part}", "\n".join(lines[part : part + 40]), lang))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    docs += [_code(f"py/{p.name}", p.read_text(), "Python") for p in sorted(stdlib.glob("[a-h]*.py"))[:25]]
    docs += [_code(f"c/{p.name}", p.read_text(), "C") for p in TAB_INDENTED_SOURCES[:6]]
    docs += [
        _code(f"c/{p.name}", p.read_text(errors="replace"), "C") for p in sorted(Path("/usr/include").glob("s*.h"))[:8]
    ]
    return [d for d in docs if d["text"].strip()]


def write_dataset(
    root: Path, docs: list[dict[str, Any]], rows_per_shard: int = 40, schema: pa.Schema | None = SCHEMA
) -> Path:
    writer = ShardWriter(root, "shards", "docs")
    for start in range(0, len(docs), rows_per_shard):
        writer.write(pa.Table.from_pylist(docs[start : start + rows_per_shard], schema))
        writer.close()
    write_manifest(root, Manifest("test_classified", {}, writer.shards, describe_columns(writer.schemas)))
    return root


@pytest.fixture(scope="session")
def classified_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("classified"), real_documents())


@pytest.fixture(scope="session")
def tiny_model(classified_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1,200-piece model with a user symbol, trained on an up-sampled sample of the real documents."""
    from corpusmill.curation.executor import SerialExecutor
    from corpusmill.tokenizer.sample_stage import SampleOptions, sample
    from corpusmill.tokenizer.train_stage import TrainOptions, train_tokenizer

    root = tmp_path_factory.mktemp("tiny_model")
    sample_options = SampleOptions(
        inputs=(str(classified_dataset),), out=str(root / "sample"), upsample=("multilingual=2", "code=0.5"), seed=1
    )
    sample(sample_options, executor=SerialExecutor())
    train_options = TrainOptions(
        input=str(root / "sample"),
        out=str(root / "model"),
        vocab_size=TINY_VOCAB,
        user_symbols=("<mask>",),
        num_threads=2,
    )
    train_tokenizer(train_options, executor=SerialExecutor())
    return root / "model"
