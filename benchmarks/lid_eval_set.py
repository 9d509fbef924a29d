"""A language-ID evaluation set of real multilingual documents found on this machine.

    apt-get install -y $(.venv/bin/python benchmarks/lid_eval_set.py --packages)   # the inputs
    .venv/bin/python benchmarks/lid_eval_set.py --out bench_data/lid_eval

Three kinds of documents, each labelled by where it lives, never by a model:

  man       translated manual pages (Debian's ``manpages-*`` packages and the translations other
            packages ship under /usr/share/man/<locale>/), rendered with ``man -l`` (groff, UTF-8,
            80 columns), overstrikes removed with ``col -bx``, running header and footer dropped;
            English pages come from /usr/share/man/man[1-8]. A translated page is left out as
            untranslated when 30% or more of its text is English: its share of word 4-grams found
            in the English page of the same name (when installed; robust to re-wrapping), or the
            share of its paragraphs that read as English by a fixed list of English function words
            (``ENGLISH_FUNCTION_WORDS``; catches pages whose English original is not installed),
            whichever is larger. Label: the locale directory.
  catalog   gettext catalogs (/usr/share/locale/<locale>/LC_MESSAGES/*.mo): consecutive translated
            messages of one catalog joined into documents of 250 to 1,500 characters, at most
            ``--per-catalog`` per catalog so that one big catalog cannot stand for its language.
            A message is skipped when it is a copy of its English original, when under
            ``MIN_TRANSLATED_SHARE`` of its letters are in words that are not in the original
            (usage strings whose option names, commands and placeholders are copied, partly
            translated messages), or when it was seen before in that locale. English: the message
            ids of the ``de`` catalogs. Label: the locale.
  nonling   text that is mostly not language (label ``und``): number tables (numpy's test-data CSVs),
            vector markup (SVG icons), and hex and base64 dumps of this machine's own binaries.

Labels go through `normalize_language_code` (``pt_BR`` -> ``pt``, ``sr@latin`` -> ``sr``,
``zh_TW`` -> ``zh``, ``no`` / ``nb_NO`` -> ``nb``). Everything is chosen by sorted paths and
hashes, with no randomness, so the same installed packages give the same documents; ``manifest.json``
records the package versions, the settings, the counts and the digest of ``documents.parquet``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import subprocess
import sysconfig
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from glob import glob
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from corpusmill.curation.classify.gettext_catalogs import (
    MIN_MESSAGE_CHARS,
    MIN_TRANSLATED_SHARE,
    SKIPPED_LOCALES,
    catalog_pairs,
    translated_share,
)
from corpusmill.curation.classify.iso639 import normalize_language_code

MAN_PACKAGES = (
    "manpages-cs manpages-da manpages-de manpages-el manpages-es manpages-fi manpages-fr manpages-hu "
    "manpages-id manpages-it manpages-ja manpages-mk manpages-nb manpages-nl manpages-pl manpages-pt-br "
    "manpages-ro manpages-ru manpages-sr manpages-sv manpages-tr manpages-uk manpages-vi manpages-zh man-db groff-base"
).split()
"""Debian packages whose files the set is built from (man-db and groff render the pages)."""

ENGLISH_SOURCE_LOCALE = "de"
CATALOG_DOC_CHARS = (250, 1500)
MIN_MAN_CHARS = 400
MAX_MAN_CHARS = 60_000
MAX_ENGLISH_SHARE = 0.3
"""A translated page whose text is this much English is left out as untranslated."""
SHINGLE_WORDS = 4
ENGLISH_FUNCTION_WORDS = frozenset("the and is are which that with this from when these have been".split())
"""Frequent English words that are not frequent words of the set's other Latin-script languages."""
ENGLISH_PARAGRAPH_SHARE = 0.08
"""A paragraph in which this share of the words are English function words reads as English."""
_WORD = re.compile(r"[^\W\d_]+")
NONLING_DOC_CHARS = 1200
SCHEMA = pa.schema(
    [("id", pa.string()), ("lang", pa.string()), ("kind", pa.string()), ("origin", pa.string()), ("text", pa.string())]
)


def stable_order(items: list[str], salt: str) -> list[str]:
    """A fixed pseudo-random order: sorted by a hash, so a sample does not follow file names."""
    return sorted(items, key=lambda item: hashlib.sha256(f"{salt}/{item}".encode()).hexdigest())


def locale_label(locale: str) -> str:
    return normalize_language_code(locale)


# --- man pages ---------------------------------------------------------------------------------


def man_locales() -> dict[str, list[str]]:
    """Locale directory -> its page files (regular files only: links are other pages' aliases)."""
    locales = {"en": sorted(glob("/usr/share/man/man[1-8]/*"))}
    for directory in sorted(glob("/usr/share/man/*/")):
        locale = Path(directory).name
        if not locale.startswith("man"):
            locales[locale] = sorted(glob(f"{directory}man[1-8]/*"))
    return {
        locale: [p for p in paths if os.path.isfile(p) and not os.path.islink(p)] for locale, paths in locales.items()
    }


def render_man_page(path: str) -> str:
    """The page as a reader sees it: groff through man-db, UTF-8, 80 columns, no overstrikes."""
    environment = {**os.environ, "MANWIDTH": "80", "LANG": "C.UTF-8", "MAN_KEEP_FORMATTING": "0"}
    try:
        rendered = subprocess.run(
            ["man", "-E", "UTF-8", "-l", path], capture_output=True, env=environment, timeout=60, check=False
        ).stdout
        plain = subprocess.run(["col", "-bx"], input=rendered, capture_output=True, timeout=60, check=False).stdout
    except subprocess.TimeoutExpired:
        return ""
    lines = plain.decode("utf-8", errors="replace").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    body = lines[1:-1] if len(lines) > 2 else []  # the running header and footer
    return "\n".join(body).strip("\n")[:MAX_MAN_CHARS]


def english_counterpart(path: str) -> str | None:
    """``/usr/share/man/fr/man8/groupadd.8.gz`` -> ``/usr/share/man/man8/groupadd.8.gz``, if installed."""
    parts = Path(path).parts
    english = Path(*parts[:4], *parts[5:])  # drop the locale directory
    return str(english) if parts[:4] == ("/", "usr", "share", "man") and english.exists() else None


def _shingles(text: str) -> list[tuple[str, ...]]:
    words = [word.lower() for word in _WORD.findall(text)]
    return [tuple(words[i : i + SHINGLE_WORDS]) for i in range(max(0, len(words) - SHINGLE_WORDS + 1))]


@lru_cache(maxsize=512)
def _english_shingles(english_path: str) -> frozenset[tuple[str, ...]]:
    return frozenset(_shingles(render_man_page(english_path)))


def english_paragraph_share(text: str) -> float:
    """Share of the text's letters in paragraphs that read as English (``ENGLISH_FUNCTION_WORDS``)."""
    total = english = 0
    for paragraph in re.split(r"\n\s*\n", text):
        words = [word.lower() for word in _WORD.findall(paragraph)]
        letters = sum(map(len, words))
        total += letters
        if words and sum(word in ENGLISH_FUNCTION_WORDS for word in words) >= ENGLISH_PARAGRAPH_SHARE * len(words):
            english += letters
    return english / total if total else 0.0


def english_share(path: str, text: str) -> float:
    """How much of a translated page is English: the larger of two model-free measures.

    Many packages ship pages under a locale that are only partly translated (a translated NAME
    section over an English body); such a page is not a document in that language, and no
    model decides it: the English original (word 4-grams it shares with the page, however
    either is wrapped) or, where none is installed, English function words do.
    """
    by_words = english_paragraph_share(text)
    english = english_counterpart(path)
    shingles = _shingles(text)
    if english is None or not shingles:
        return by_words
    known = _english_shingles(english)
    return max(by_words, sum(shingle in known for shingle in shingles) / len(shingles))


def _render_translated(item: tuple[str, str]) -> tuple[str, float]:
    label, path = item
    text = render_man_page(path)
    return text, (english_share(path, text) if label != "en" and len(text) >= MIN_MAN_CHARS else 0.0)


def man_documents(per_language: int, workers: int) -> Iterator[tuple[str, str, str]]:
    """``(label, path, text)`` for up to ``per_language`` rendered, translated pages of each language."""
    by_label: dict[str, list[str]] = {}
    for locale, paths in man_locales().items():
        by_label.setdefault(locale_label(locale), []).extend(paths)
    with ProcessPoolExecutor(workers) as pool:
        for label, paths in sorted(by_label.items()):
            kept = 0
            candidates = stable_order(paths, "man")
            for start in range(0, len(candidates), 2 * per_language):
                chunk = [(label, path) for path in candidates[start : start + 2 * per_language]]
                for (_, path), (text, copied) in zip(chunk, pool.map(_render_translated, chunk, chunksize=8)):
                    if len(text) >= MIN_MAN_CHARS and copied < MAX_ENGLISH_SHARE and kept < per_language:
                        kept += 1
                        yield label, path, text
                if kept >= per_language:
                    break


# --- gettext catalogs --------------------------------------------------------------------------


def catalog_documents(locale: str, english: bool, per_catalog: int, limit: int) -> list[tuple[str, str]]:
    """``(path, text)``: documents of joined messages, at most ``per_catalog`` per catalog."""
    documents: list[tuple[str, str]] = []
    seen: set[str] = set()
    min_chars, max_chars = CATALOG_DOC_CHARS
    for path in stable_order(glob(f"/usr/share/locale/{locale}/LC_MESSAGES/*.mo"), locale):
        current, made = "", 0
        for original, translated in catalog_pairs(path):
            message = (original if english else translated).strip()
            if len(message) < MIN_MESSAGE_CHARS or message in seen:
                continue
            if not english and translated_share(original, message) < MIN_TRANSLATED_SHARE:
                continue
            seen.add(message)
            current += message + "\n"
            if len(current) >= min_chars:
                documents.append((path, current[:max_chars]))
                current, made = "", made + 1
                if made == per_catalog:
                    break
    return documents[:limit]


def stable_order_pairs(pairs: list[tuple[str, str]], salt: str) -> list[tuple[str, str]]:
    return sorted(pairs, key=lambda pair: hashlib.sha256(f"{salt}/{pair[1]}".encode()).hexdigest())


def all_catalog_documents(per_language: int, per_catalog: int) -> Iterator[tuple[str, str, str]]:
    """``(label, path, text)``: locales sharing a label (``pt``, ``pt_BR``) pool their documents."""
    by_label: dict[str, list[tuple[str, str]]] = {}
    locales = sorted(Path(d).parent.name for d in glob("/usr/share/locale/*/LC_MESSAGES"))
    sources = [(locale, False) for locale in locales if locale not in SKIPPED_LOCALES]
    for locale, english in [*sources, (ENGLISH_SOURCE_LOCALE, True)]:
        label = "en" if english else locale_label(locale)
        by_label.setdefault(label, []).extend(catalog_documents(locale, english, per_catalog, per_language))
    for label, documents in sorted(by_label.items()):
        for path, text in stable_order_pairs(documents, label)[:per_language]:
            yield label, path, text


# --- mostly non-linguistic text ----------------------------------------------------------------


def nonlinguistic_documents(per_source: int) -> Iterator[tuple[str, str, str]]:
    """``("und", origin, text)``: number tables, SVG markup, hex and base64 dumps of binaries."""
    numpy_dir = Path(sysconfig.get_paths()["purelib"]) / "numpy"
    tables = sorted(str(p) for p in numpy_dir.rglob("tests/data/*.csv"))
    svgs = stable_order(glob("/usr/share/icons/**/*.svg", recursive=True), "svg")
    binaries = stable_order([p for p in glob("/usr/bin/*") if os.path.isfile(p) and not os.path.islink(p)], "bin")
    yield from _chunks(tables, per_source, lambda p: Path(p).read_text(errors="replace"), "table")
    yield from _chunks(svgs, per_source, lambda p: Path(p).read_text(errors="replace"), "svg")
    yield from _chunks(binaries, per_source, _hex_dump, "hex")
    yield from _chunks(binaries[per_source:], per_source, _base64_dump, "base64")


def _chunks(paths: list[str], limit: int, read, kind: str) -> Iterator[tuple[str, str, str]]:
    made = 0
    for path in paths:
        text = read(path)
        middle = len(text) // 2  # past any header
        chunk = text[middle : middle + NONLING_DOC_CHARS]
        if len(chunk) >= NONLING_DOC_CHARS // 2:
            yield "und", f"{kind}:{path}", chunk
            made += 1
            if made == limit:
                return


def _hex_dump(path: str) -> str:
    data = Path(path).read_bytes()[4096 : 4096 + 1024]
    lines = []
    for offset in range(0, len(data), 16):
        row = data[offset : offset + 16]
        printable = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"{offset:08x}: {row.hex(' ')}  {printable}")
    return "\n".join(lines) * 2


def _base64_dump(path: str) -> str:
    encoded = base64.b64encode(Path(path).read_bytes()[:6000]).decode()
    return "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))


# --- the set -----------------------------------------------------------------------------------


def package_versions() -> dict[str, str]:
    names = MAN_PACKAGES + ["python3-numpy"]
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package}\t${Version}\n", *names], capture_output=True, text=True, check=False
    )
    return dict(line.split("\t", 1) for line in result.stdout.splitlines() if "\t" in line)


def build(out: Path, man_per_language: int, catalog_per_language: int, per_catalog: int, nonling: int) -> dict:
    rows: dict[str, list[str]] = {name: [] for name in SCHEMA.names}
    seen: set[str] = set()
    sources = [
        ("man", man_documents(man_per_language, workers=os.cpu_count() or 1)),
        ("catalog", all_catalog_documents(catalog_per_language, per_catalog)),
        ("nonling", nonlinguistic_documents(nonling)),
    ]
    for kind, documents in sources:
        for label, origin, text in documents:
            digest = hashlib.sha256(text.encode()).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            for name, value in zip(SCHEMA.names, (f"{kind}-{digest[:16]}", label, kind, origin, text)):
                rows[name].append(value)
    out.mkdir(parents=True, exist_ok=True)
    table = pa.table(rows, schema=SCHEMA)
    pq.write_table(table, out / "documents.parquet", compression="zstd")
    counts = Counter(zip(rows["kind"], rows["lang"]))
    manifest = {
        "documents": table.num_rows,
        "settings": {
            "man_per_language": man_per_language,
            "catalog_per_language": catalog_per_language,
            "per_catalog": per_catalog,
            "nonling_per_source": nonling,
            "max_english_share": MAX_ENGLISH_SHARE,
            "min_translated_share": MIN_TRANSLATED_SHARE,
        },
        "per_kind_language": {f"{kind}/{lang}": n for (kind, lang), n in sorted(counts.items())},
        "languages": len({lang for lang in rows["lang"] if lang != "und"}),
        "packages": package_versions(),
        "sha256": hashlib.sha256((out / "documents.parquet").read_bytes()).hexdigest(),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench_data/lid_eval"))
    parser.add_argument("--man-per-language", type=int, default=120, help="rendered man pages per language")
    parser.add_argument("--catalog-per-language", type=int, default=200, help="catalog documents per language")
    parser.add_argument("--per-catalog", type=int, default=6, help="documents from any one catalog (per locale)")
    parser.add_argument("--nonling-per-source", type=int, default=60, help="mostly non-linguistic documents per kind")
    parser.add_argument("--packages", action="store_true", help="print the Debian packages the set reads, and exit")
    args = parser.parse_args()
    if args.packages:
        print(" ".join(MAN_PACKAGES))
        return
    manifest = build(
        args.out, args.man_per_language, args.catalog_per_language, args.per_catalog, args.nonling_per_source
    )
    print(json.dumps({k: v for k, v in manifest.items() if k != "per_kind_language"}, indent=1))
    print(f"{manifest['documents']} documents, {manifest['languages']} languages -> {args.out}/documents.parquet")


if __name__ == "__main__":
    main()
