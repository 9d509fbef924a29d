"""Real text from this machine for the quality benchmarks: English prose, and five kinds of low-value text.

Why: `corpusmill quality` claims that CCNet perplexity separates well-formed prose from the
boilerplate a crawl is full of. This machine has no network, so both sides come from what it
ships. Every file is cut at blank or line boundaries into documents of 2-8 KB (lines kept
as written), so document length is not what tells the kinds apart.

* ``prose``: the prose lines (:func:`is_prose_line`: C4's rule of a line, at least 5 words that
  are mostly words, ending in terminal punctuation) of man pages' running text (roff requests
  stripped; roff puts one sentence per line), the Python reference manual
  (``pydoc_data.topics``), docstrings of the Python standard library and installed packages,
  and READMEs / ``.md`` / ``.rst`` / ``.txt`` docs; changelogs, licences and file lists are kept
  out of it. This is the reference corpus CCNet takes from Wikipedia: well-formed prose. One file in ten (by a hash of its
  path) is held out of the LM's training text, and held-out documents whose text also
  occurs in training files are dropped.
* low-value kinds: ``changelog`` (Debian and upstream changelogs, NEWS), ``catalog`` (gettext
  UI-string catalogs as .po text: the machine's .po files, and .mo catalogs rendered with
  msgunfmt), ``file_list`` (dpkg ``*.list``, wheels' RECORD, eggs' SOURCES.txt), ``licence``
  (``/usr/share/common-licenses``, Debian ``copyright`` files, packages' LICENSE files) and
  ``table`` (pci.ids-like tables: services, protocols, mime types, zone tables, locales).

    .venv/bin/python benchmarks/quality_corpus.py --out bench_data/quality/corpus

writes ``train/`` (LM training documents), ``heldout/`` (held-out prose) and ``lowvalue/``, each a
document dataset with ``lang`` = en, ``category`` = english and a ``kind`` column.
"""

from __future__ import annotations

import argparse
import ast
import random
import re
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterator
from glob import glob
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import xxhash
from corpus_gen import _read_text, _roff_to_text

MIN_DOC_CHARS = 2000
MAX_DOC_CHARS = 8000
HELD_OUT_EVERY = 10
LOW_VALUE_DOCS_PER_KIND = 400
SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])
MAIN_SITE = Path(next(iter(glob("/work/main/.venv/lib/python3*/site-packages")), str(SITE_PACKAGES)))
STDLIB = Path(sysconfig.get_paths()["stdlib"])
TERMINAL = (".", "!", "?", '."', ".)", '?"', '!"')
NOT_PROSE = re.compile(
    r"change|news|history|copying|copyright|licen[cs]e|authors|record|sources\.txt|\.list$", re.IGNORECASE
)


def chunks(text: str) -> Iterator[str]:
    """Documents of MIN..MAX_DOC_CHARS cut at line ends (blank lines preferred), lines as written."""
    current: list[str] = []
    size = 0
    for line in text.splitlines():
        if size >= MIN_DOC_CHARS and (not line.strip() or size + len(line) > MAX_DOC_CHARS):
            yield "\n".join(current).strip("\n")
            current, size = [], 0
        if line.strip() or current:
            current.append(line.rstrip())
            size += len(line) + 1
    if size >= MIN_DOC_CHARS // 2:
        yield "\n".join(current).strip("\n")


# --- prose -------------------------------------------------------------------------------------


def is_prose_line(line: str) -> bool:
    """C4's notion of a prose line, a little stricter: at least 5 words, ending in terminal
    punctuation, and words that are mostly words (not paths, options or code)."""
    words = line.split()
    if len(words) < 5 or not line.rstrip().endswith(TERMINAL) or line.lstrip().startswith((">>>", "$ ", "#", "-")):
        return False
    return sum(word.strip(".,;:()\"'").isalpha() for word in words) >= 0.8 * len(words)


def prose_only(text: str) -> str:
    """The prose lines of a man page, docstring or README, in order (option tables, code, lists dropped)."""
    return "\n".join(line.strip() for line in text.splitlines() if is_prose_line(line))


def man_pages() -> Iterator[tuple[str, str]]:
    for path in sorted(glob("/usr/share/man/man[1-8]/*.gz")):
        roff = _read_text(Path(path))
        if roff and not roff.lstrip().startswith(".so "):
            yield path, _roff_to_text(roff)


def reference_manual() -> Iterator[tuple[str, str]]:
    from pydoc_data.topics import topics

    for name, text in sorted(topics.items()):
        yield f"pydoc:{name}", text


def docstrings() -> Iterator[tuple[str, str]]:
    """Every docstring of a module, joined: the prose Python programmers write."""
    roots = [STDLIB, MAIN_SITE]
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if "test" in path.parts or "tests" in path.parts:
                continue
            source = _read_text(path)
            if not source:
                continue
            try:
                tree = ast.parse(source)
            except (SyntaxError, ValueError):
                continue
            texts = [
                doc
                for node in ast.walk(tree)
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and (doc := ast.get_docstring(node))
                and len(doc) >= 200
            ]
            if texts:
                yield str(path), "\n\n".join(texts)


def doc_files() -> Iterator[tuple[str, str]]:
    patterns = ["/usr/share/doc/**/*", f"{MAIN_SITE}/**/*.md", f"{MAIN_SITE}/**/*.rst", f"{MAIN_SITE}/**/*.txt"]
    for pattern in patterns:
        for path in sorted(glob(pattern, recursive=True)):
            name = Path(path).name
            if NOT_PROSE.search(name) or not re.search(r"(readme|\.md|\.rst|\.txt)(\.gz)?$", name, re.IGNORECASE):
                continue
            text = _read_text(Path(path))
            if text:
                yield path, text


PROSE_SOURCES: dict[str, Callable[[], Iterator[tuple[str, str]]]] = {
    "man": man_pages,
    "manual": reference_manual,
    "docstring": docstrings,
    "doc": doc_files,
}


# --- low-value kinds ---------------------------------------------------------------------------


def _files(patterns: list[str]) -> Iterator[tuple[str, str]]:
    for pattern in patterns:
        for path in sorted(glob(pattern, recursive=True)):
            text = _read_text(Path(path))
            if text:
                yield path, text


def catalogs() -> Iterator[tuple[str, str]]:
    yield from _files(["/work/main/.venv/**/*.po", "/usr/share/**/*.po"])
    for path in sorted(glob("/usr/share/locale/*/LC_MESSAGES/*.mo"))[::25]:  # every 25th: many locales, many domains
        rendered = subprocess.run(["msgunfmt", path], capture_output=True, text=True, errors="replace", check=False)
        if rendered.returncode == 0 and rendered.stdout:
            yield path, rendered.stdout


LOW_VALUE_SOURCES: dict[str, Callable[[], Iterator[tuple[str, str]]]] = {
    "changelog": lambda: _files(
        [
            "/usr/share/doc/*/changelog*",
            "/usr/share/doc/*/NEWS*",
            f"{MAIN_SITE}/**/CHANGELOG*",
            f"{MAIN_SITE}/**/CHANGES*",
        ]
    ),
    "catalog": catalogs,
    "file_list": lambda: _files(
        ["/var/lib/dpkg/info/*.list", f"{MAIN_SITE}/*.dist-info/RECORD", f"{MAIN_SITE}/*.egg-info/SOURCES.txt"]
    ),
    "licence": lambda: _files(
        [
            "/usr/share/common-licenses/*",
            "/usr/share/doc/*/copyright",
            f"{MAIN_SITE}/*.dist-info/LICEN[CS]E*",
            f"{MAIN_SITE}/*.dist-info/licenses/*",
        ]
    ),
    "table": lambda: _files(
        [
            "/etc/services",
            "/etc/protocols",
            "/etc/mime.types",
            "/usr/share/i18n/SUPPORTED",
            "/usr/share/zoneinfo/*.tab",
            "/usr/share/misc/*.ids",
            "/usr/share/hwdata/*.ids",
            "/etc/ethertypes",
            "/usr/share/i18n/locales/iso*",
        ]
    ),
}


# --- writing -----------------------------------------------------------------------------------


def write_dataset(directory: Path, docs: list[dict[str, str]]) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    rows = {key: [doc[key] for doc in docs] for key in ("id", "text", "source", "kind", "file")}
    rows |= {"lang": ["en"] * len(docs), "category": ["english"] * len(docs)}
    for start in range(0, max(len(docs), 1), 20_000):
        part = {key: values[start : start + 20_000] for key, values in rows.items()}
        pq.write_table(pa.table(part), directory / f"part-{start // 20_000:05d}.parquet")
    return sum(len(doc["text"].encode()) for doc in docs)


def build(out: Path, seed: int = 0) -> dict[str, int]:
    """Write train/, heldout/ and lowvalue/; returns documents per part and kind."""
    seen: set[int] = set()
    train, held_out = [], []
    for kind, source in PROSE_SOURCES.items():
        for path, text in source():
            target = held_out if xxhash.xxh64_intdigest(path) % HELD_OUT_EVERY == 0 else train
            for index, chunk in enumerate(chunks(prose_only(text))):
                digest = xxhash.xxh64_intdigest(chunk)
                if digest in seen:
                    continue  # the same README ships in several packages
                seen.add(digest)
                target.append(
                    {"id": f"{kind}:{path}:{index}", "text": chunk, "source": kind, "kind": "prose", "file": path}
                )
    train_lines = {line for doc in train for line in doc["text"].splitlines() if len(line) > 40}
    held_out = [
        doc for doc in held_out if not any(line in train_lines for line in doc["text"].splitlines() if len(line) > 40)
    ]
    rng = random.Random(seed)
    low_value = []
    counts = {"train": len(train), "heldout": len(held_out)}
    for kind, source in LOW_VALUE_SOURCES.items():
        docs = [
            {"id": f"{kind}:{path}:{index}", "text": chunk, "source": kind, "kind": kind, "file": path}
            for path, text in source()
            for index, chunk in enumerate(chunks(text))
        ]
        docs = [doc for doc in docs if xxhash.xxh64_intdigest(doc["text"]) not in seen]
        rng.shuffle(docs)
        low_value += docs[:LOW_VALUE_DOCS_PER_KIND]
        counts[kind] = min(len(docs), LOW_VALUE_DOCS_PER_KIND)
    counts["train_bytes"] = write_dataset(out / "train", train)
    counts["heldout_bytes"] = write_dataset(out / "heldout", held_out)
    counts["lowvalue_bytes"] = write_dataset(out / "lowvalue", low_value)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench_data/quality/corpus"))
    args = parser.parse_args()
    print(build(args.out), file=sys.stderr)


if __name__ == "__main__":
    main()
