"""Real documents from this machine, classified by hand, and tiny SentencePiece models trained once.

Handed out as fixtures: with ``--import-mode=importlib`` test modules cannot import conftest.
"""

from __future__ import annotations

import gzip
import io
import sysconfig
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpusmill.pipelines.demo_corpus import read_mo_translations

LOCALES = ("de", "fr", "es")
BIG_VOCAB = 70_000  # above Megatron's uint16 limit of 65,500: forces int32 tokens


def _english_docs(limit: int) -> list[str]:
    texts = []
    for path in sorted(Path("/usr/share/doc").glob("*/copyright")) + sorted(
        Path("/usr/share/doc").glob("*/README*.gz")
    ):
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        text = data.decode("utf-8", errors="replace")
        if 500 < len(text) < 40_000:
            texts.append(text)
        if len(texts) == limit:
            return texts
    pytest.fail(f"expected {limit} English docs under /usr/share/doc")


def _code_docs(limit: int) -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [p.read_text() for p in sorted(stdlib.glob("*.py")) if 1000 < p.stat().st_size < 30_000]
    return texts[:limit]


def _translated_docs(locale: str, limit: int) -> list[str]:
    for domain in ("coreutils", "bash", "grep", "tar", "dpkg", "apt"):
        path = Path(f"/usr/share/locale/{locale}/LC_MESSAGES/{domain}.mo")
        if path.exists():
            lines = [line for line in read_mo_translations(path) if len(line) > 30]
            if len(lines) >= limit * 10:
                return ["\n".join(lines[i * 10 : (i + 1) * 10]) for i in range(limit)]
    pytest.fail(f"expected a gettext catalog with {limit * 10} messages for {locale}")


def classified_rows() -> list[dict[str, object]]:
    """Documents with the classify stage's columns, set by hand from where the text came from."""
    rows: list[dict[str, object]] = []
    for i, text in enumerate(_english_docs(24)):
        bucket = ("high", "medium", "low")[i % 3]
        rows.append({"id": f"doc-{i}", "text": text, "source": ("debian_docs", "readmes")[i % 2],
                     "lang": "en", "category": "english", "code_lang": None, "quality_bucket": bucket})  # fmt: skip
    for i, text in enumerate(_code_docs(20)):
        rows.append({"id": f"py-{i}", "text": text, "source": "stdlib", "lang": "en", "category": "code",
                     "code_lang": "python", "quality_bucket": "high"})  # fmt: skip
    for locale in LOCALES:
        for i, text in enumerate(_translated_docs(locale, 6)):
            rows.append({"id": f"{locale}-{i}", "text": text, "source": "catalogs", "lang": locale,
                         "category": "multilingual", "code_lang": None, "quality_bucket": "medium"})  # fmt: skip
    return rows


def bad_rows() -> list[dict[str, object]]:
    """Rows that break the document contract, and one whose text encodes to no tokens."""
    template = {"source": "broken", "lang": "en", "category": "english", "code_lang": None, "quality_bucket": "low"}
    return [
        {**template, "id": "null-text", "text": None},
        {**template, "id": "blank", "text": "  \n\t "},
        {**template, "id": "zero-width", "text": "\u200b\u200b"},
    ]


def write_dataset(root: Path, rows: list[dict[str, object]], shards: int) -> Path:
    """A bare Parquet dataset (no manifest): what `Dataset.open` accepts from elsewhere."""
    root.mkdir(parents=True)
    per_shard = -(-len(rows) // shards)
    for index in range(shards):
        chunk = rows[index * per_shard : (index + 1) * per_shard]
        schema = pa.schema([(name, pa.string()) for name in chunk[0]])
        pq.write_table(pa.Table.from_pylist(chunk, schema=schema), root / f"part-{index}.parquet")
    return root


def train_tokenizer(directory: Path, texts: list[str], vocab_size: int) -> Path:
    import sentencepiece

    directory.mkdir(parents=True)
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size, model_type="bpe",
        byte_fallback=True, max_sentence_length=1 << 20, minloglevel=2, num_threads=2,
    )  # fmt: skip
    path = directory / "tokenizer.model"
    path.write_bytes(model.getvalue())
    return path


def widen_vocabulary(small_model: Path, path: Path, size: int, words: list[str]) -> Path:
    """The small model plus user-defined pieces up to ``size``; ``words`` get the last ids, so
    text containing them encodes to ids above 65,535."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(small_model.read_bytes())
    filler = size - len(proto.pieces) - len(words)
    for index in range(filler):
        proto.pieces.add(
            piece=f"<unused{index}>", score=0.0, type=sentencepiece_model_pb2.ModelProto.SentencePiece.USER_DEFINED
        )
    for word in words:
        proto.pieces.add(piece=word, score=0.0, type=sentencepiece_model_pb2.ModelProto.SentencePiece.USER_DEFINED)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(proto.SerializeToString())
    return path


@pytest.fixture(scope="session")
def real_rows() -> list[dict[str, object]]:
    return classified_rows()


@pytest.fixture(scope="session")
def tokenizer_model(tmp_path_factory: pytest.TempPathFactory, real_rows: list[dict[str, object]]) -> Path:
    return train_tokenizer(tmp_path_factory.mktemp("tok") / "small", [str(r["text"]) for r in real_rows], 800)


@pytest.fixture(scope="session")
def big_tokenizer_model(tmp_path_factory: pytest.TempPathFactory, tokenizer_model: Path) -> Path:
    return widen_vocabulary(
        tokenizer_model,
        tmp_path_factory.mktemp("tok") / "big" / "tokenizer.model",
        BIG_VOCAB,
        ["return", "Copyright", "der"],
    )


@pytest.fixture
def make_dataset(tmp_path: Path, real_rows: list[dict[str, object]]) -> Callable[..., Path]:
    def make(shards: int = 2, with_bad_rows: bool = True, name: str = "classified") -> Path:
        rows = list(real_rows)
        if with_bad_rows:
            rows[5:5] = bad_rows()
        return write_dataset(tmp_path / name, rows, shards)

    return make
