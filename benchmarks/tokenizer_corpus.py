"""The largest real, classified corpus this machine can give, for the tokenizer benchmark.

Why: a 256k-piece vocabulary only means something when trained on a lot of real text in
many languages and programming languages; this machine has no network, so we take what it
ships: documentation and man pages (English and ~30 languages), every gettext catalog
(~190 locales) and the source code of the installed Python packages, headers, Rust and Go
trees. Files are de-duplicated by content. Labels come from provenance (a catalog's
locale, a man page's directory, a file's extension) rather than from `corpusmill classify`,
so the benchmark does not depend on the classifier; they set the columns the classify
stage adds (lang, lang_score, category, code_lang, code_lang_source).

    .venv/bin/python benchmarks/tokenizer_corpus.py --out /tmp/tok_bench/corpus \
        --extra-root .venv/lib/python3.11/site-packages

writes OUT/pool (to sample from) and OUT/heldout (one document in 20, for `tokenizer eval`).
"""

from __future__ import annotations

import argparse
import gzip
import re
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import xxhash

from corpusmill.curation.dataset import Manifest, ShardWriter, describe_columns, write_manifest
from corpusmill.pipelines.demo_corpus import read_mo_translations

MAX_FILE_BYTES = 1_000_000
CATALOG_CHUNK_CHARS = 4000
CODE_EXTENSIONS = {
    ".py": "Python",
    ".pyi": "Python",
    ".c": "C",
    ".h": "C",
    ".cc": "C++",
    ".cpp": "C++",
    ".hpp": "C++",
    ".cu": "Cuda",
    ".rs": "Rust",
    ".go": "Go",
    ".js": "JavaScript",
    ".ts": "TypeScript",
    ".rb": "Ruby",
    ".pl": "Perl",
    ".pm": "Perl",
    ".sh": "Shell",
    ".lua": "Lua",
    ".java": "Java",
}
DOC_SUFFIXES = (".md", ".rst", ".txt")
CODE_ROOTS = (Path("/usr/lib"), Path("/usr/include"), Path("/usr/share"), Path("/usr/local/lib"), Path("/usr/src"))
DOC_ROOTS = (Path("/usr/share/doc"), Path("/usr/lib"), Path("/usr/local/lib"))
LOCALE_ROOTS = (Path("/usr/share/locale"), Path("/usr/share/locale-langpack"))
MAN_ROOT = Path("/usr/share/man")
SCHEMA = pa.schema(
    [(name, pa.string()) for name in ("id", "text", "source", "lang")]
    + [("lang_score", pa.float32())]
    + [(name, pa.string()) for name in ("category", "code_lang", "code_lang_source", "path")]
)


def locale_language(locale: str) -> str:
    """`pt_BR` -> `pt`, `sr@latin` -> `sr`: the language part of a gettext locale name."""
    return re.split(r"[_@.]", locale, maxsplit=1)[0]


def _read_text(path: Path) -> str | None:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
        return None
    return text if text.strip() and "\x00" not in text else None


def _files(root: Path) -> Iterator[Path]:
    if root.is_dir():
        yield from sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _prose(text: str, lang: str, source: str, path: Path) -> dict:
    category = "english" if lang == "en" else "multilingual"
    return {
        "text": text,
        "source": source,
        "lang": lang,
        "lang_score": 1.0,
        "category": category,
        "code_lang": None,
        "code_lang_source": None,
        "path": str(path),
    }


def _documentation(extra_roots: list[Path]) -> Iterator[dict]:
    for root in (*DOC_ROOTS, *extra_roots):
        for path in _files(root):
            name = path.name.removesuffix(".gz")
            is_doc = root.name == "doc" or name.endswith(DOC_SUFFIXES) or name.startswith("README")
            if is_doc and Path(name).suffix not in CODE_EXTENSIONS and (text := _read_text(path)):
                yield _prose(text, "en", "documentation", path)


def _man_pages() -> Iterator[dict]:
    for path in _files(MAN_ROOT):
        top = path.relative_to(MAN_ROOT).parts[0]
        lang = "en" if top.startswith("man") else locale_language(top)
        if text := _read_text(path):
            yield _prose(text, lang, "man_pages", path)


def _catalogs() -> Iterator[dict]:
    for root in LOCALE_ROOTS:
        for path in _files(root):
            if path.suffix != ".mo":
                continue
            lang = locale_language(path.relative_to(root).parts[0])
            try:
                translations = [t for t in read_mo_translations(path) if t.strip()]
            except (ValueError, LookupError, UnicodeDecodeError, struct.error):
                continue
            chunk: list[str] = []
            for text in translations:
                chunk.append(text)
                if sum(map(len, chunk)) >= CATALOG_CHUNK_CHARS:
                    yield _prose("\n".join(chunk), lang, "translations", path)
                    chunk = []
            if chunk:
                yield _prose("\n".join(chunk), lang, "translations", path)


def _code(extra_roots: list[Path]) -> Iterator[dict]:
    for root in (*CODE_ROOTS, *extra_roots):
        for path in _files(root):
            code_lang = CODE_EXTENSIONS.get(path.suffix)
            if code_lang and (text := _read_text(path)):
                yield {
                    "text": text,
                    "source": "source_code",
                    "lang": "und",
                    "lang_score": 0.0,
                    "category": "code",
                    "code_lang": code_lang,
                    "code_lang_source": "extension",
                    "path": str(path),
                }


def build_corpus(out: Path, extra_roots: list[Path], holdout_every: int) -> Counter:
    """Write every distinct real document found into OUT/pool, and one in ``holdout_every`` (by a hash
    of its id) into OUT/heldout for evaluation; return pool bytes per (category, lang|code_lang)."""
    writers = {
        name: ShardWriter(out / name, "shards", "corpus", max_shard_bytes=128 * 2**20) for name in ("pool", "heldout")
    }
    batches: dict[str, list[dict]] = {name: [] for name in writers}
    seen: set[int] = set()
    composition: Counter = Counter()
    for record in (*_documentation(extra_roots), *_man_pages(), *_catalogs(), *_code(extra_roots)):
        digest = xxhash.xxh3_64_intdigest(record["text"])
        if digest in seen:
            continue
        seen.add(digest)
        record["id"] = f"{record['source']}:{record['path']}:{digest:016x}"
        name = "heldout" if xxhash.xxh3_64_intdigest(record["id"]) % holdout_every == 0 else "pool"
        if name == "pool":
            composition[(record["category"], record["code_lang"] or record["lang"])] += len(record["text"].encode())
        batches[name].append(record)
        if len(batches[name]) == 2000:
            writers[name].write(pa.Table.from_pylist(batches[name], SCHEMA))
            batches[name] = []
    for name, writer in writers.items():
        writer.write(pa.Table.from_pylist(batches[name], SCHEMA))
        manifest = Manifest(
            "tokenizer_bench_corpus",
            {"roots": [str(r) for r in extra_roots], "part": name},
            writer.close(),
            describe_columns(writer.schemas),
        )
        write_manifest(out / name, manifest)
    return composition


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--extra-root",
        type=Path,
        action="append",
        default=[],
        help="more trees to read (e.g. a virtualenv's site-packages)",
    )
    parser.add_argument("--holdout-every", type=int, default=20, help="one document in N is held out (default 20)")
    args = parser.parse_args()
    composition = build_corpus(args.out, args.extra_root, args.holdout_every)
    by_category: Counter = Counter()
    for (category, _), nbytes in composition.items():
        by_category[category] += nbytes
    print(
        f"pool {sum(composition.values()) / 1e6:,.1f} MB: "
        + ", ".join(f"{c} {b / 1e6:,.1f} MB" for c, b in by_category.items())
    )
    print("largest groups: " + ", ".join(f"{c}/{g} {b / 1e6:,.1f} MB" for (c, g), b in composition.most_common(15)))


if __name__ == "__main__":
    main()
