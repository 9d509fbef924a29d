"""Collect labelled real files from this machine to train and test the content code classifier.

Labels come from the same rules the stage uses (path, then shebang), or from a root that
forces one on every file under it (the C++ standard headers, mostly extension-less).
Markdown, reStructuredText, documentation text, copyright notices and gettext catalogs are
the ``prose`` class, so the model also learns what is *not* code. Train/test membership is a
hash of the file's *basename*: copies of ``os.py`` from several Python versions all land on
the same side, so near-duplicates never leak across the split.
"""

import gettext
import gzip
import io
import os
import sysconfig
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from glob import glob
from pathlib import PurePosixPath

import xxhash

from corpusmill.curation.classify.code_lang import language_from_path, language_from_shebang

PROSE_LABEL = "prose"
PROSE_LIKE_LANGUAGES = frozenset({"Markdown", "reStructuredText", "RMarkdown"})
ARCHIVE_SEPARATOR = "!/"
TEST_SPLIT_PERCENT = 20
MIN_SOURCE_CHARS = 200
MAX_SOURCE_BYTES = 64_000
HEADER_HEAD_BYTES = 8192


@dataclass(frozen=True)
class SourceRoot:
    """A glob of directories, zip archives or files to collect; ``language`` labels all of them.

    ``language="prose"`` keeps only the files that look like documents (README, NEWS, .txt, ...).
    """

    pattern: str
    language: str | None = None


@dataclass(frozen=True)
class SourceFile:
    """One labelled file: ``location`` is a path, or ``archive.zip!/member``."""

    location: str
    language: str
    split: str


def default_source_roots() -> tuple[SourceRoot, ...]:
    """Where a Debian/Ubuntu machine with Python keeps real source code and real prose."""
    python_paths = sysconfig.get_paths()
    return (
        SourceRoot("/usr/include/c++/*", language="C++"),
        SourceRoot(python_paths["stdlib"]),
        SourceRoot(python_paths["purelib"]),
        SourceRoot("/usr/include"),
        SourceRoot("/usr/share/perl*"),
        SourceRoot("/usr/lib/*/perl*"),
        SourceRoot("/usr/bin"),
        SourceRoot("/usr/sbin"),
        SourceRoot("/usr/lib/node_modules"),
        SourceRoot("/usr/lib/jvm/*/lib/src.zip"),
        SourceRoot("/usr/share/go-*/src"),
        SourceRoot("/usr/src/rustc-*/library"),
        SourceRoot("/usr/lib/ruby"),
        SourceRoot("/usr/lib/google-cloud-sdk"),
        SourceRoot("/usr/share/vim"),
        SourceRoot("/usr/share/cmake*"),
        SourceRoot("/usr/share/tcltk"),
        SourceRoot("/usr/share/postgresql*"),
        SourceRoot("/usr/share/doc", language=PROSE_LABEL),
        SourceRoot("/usr/share/locale/*/LC_MESSAGES/*.mo", language=PROSE_LABEL),
    )


def split_of(location: str) -> str:
    """``test`` for a fixed fraction of basenames, else ``train``; stable across machines.

    Generic extension-less names (``copyright``, ``README``, ``Makefile``) are keyed with their
    directory, so one project's ``copyright`` does not drag every other one to the same side.
    """
    path = PurePosixPath(location.replace(ARCHIVE_SEPARATOR, "/"))
    key = path.name if "." in path.name.lstrip(".") else f"{path.parent.name}/{path.name}"
    return "test" if xxhash.xxh64_intdigest(key) % 100 < TEST_SPLIT_PERCENT else "train"


def discover_labelled_locations(roots: Iterable[SourceRoot]) -> Iterator[tuple[str, str]]:
    """Yield ``(location, label)`` for every file under ``roots`` that a rule can label.

    A file reached from several roots keeps the label of the first root that reaches it.
    """
    seen: set[str] = set()
    for root in roots:
        for match in sorted(glob(root.pattern)):
            for location in _files_under(match):
                if location in seen:
                    continue
                seen.add(location)
                label = _label(location, root.language)
                if label:
                    yield location, label


def _files_under(match: str) -> Iterator[str]:
    if match.endswith(".zip") and zipfile.is_zipfile(match):
        with zipfile.ZipFile(match) as archive:
            for member in archive.namelist():
                if not member.endswith("/"):
                    yield f"{match}{ARCHIVE_SEPARATOR}{member}"
    elif os.path.isfile(match):
        yield os.path.realpath(match)
    else:
        for directory, _, names in os.walk(match):
            for name in sorted(names):
                path = os.path.join(directory, name)
                if os.path.isfile(path) and not os.path.islink(path):
                    yield os.path.realpath(path)


def _label(location: str, forced_language: str | None) -> str | None:
    member_path = location.split(ARCHIVE_SEPARATOR)[-1]
    if forced_language == PROSE_LABEL:
        return PROSE_LABEL if _is_prose_document(member_path) else None
    if forced_language:
        return forced_language
    language = language_from_path(member_path)
    if language == "C" and member_path.lower().endswith(".h"):
        language = language_from_path(member_path, read_source_text(location, HEADER_HEAD_BYTES))
    if language is None and "." not in PurePosixPath(member_path).name:
        language = language_from_shebang(_read_head(location))
    if language in PROSE_LIKE_LANGUAGES:
        return PROSE_LABEL
    return language


def _is_prose_document(path: str) -> bool:
    name = PurePosixPath(path).name.lower().removesuffix(".gz")
    return name.endswith((".mo", ".txt", ".md", ".rst")) or name.startswith(("readme", "news", "faq", "copyright"))


def _read_head(location: str) -> str:
    try:
        with open(location, "rb") as handle:
            return handle.read(256).decode("utf-8", errors="replace")
    except OSError:
        return ""


def read_source_text(location: str, max_bytes: int = MAX_SOURCE_BYTES) -> str | None:
    """The text of a collected file (gettext catalogs as their translations), or None if binary."""
    raw = _read_bytes(location, max_bytes)
    if raw is None:
        return None
    if location.endswith(".mo"):
        return _catalog_text(raw)
    if b"\x00" in raw[:8192]:
        return None
    return raw.decode("utf-8", errors="replace")


def _read_bytes(location: str, max_bytes: int) -> bytes | None:
    try:
        if ARCHIVE_SEPARATOR in location:
            archive_path, member = location.split(ARCHIVE_SEPARATOR, 1)
            with zipfile.ZipFile(archive_path) as archive, archive.open(member) as handle:
                return handle.read(max_bytes)
        if location.endswith(".gz"):
            with gzip.open(location, "rb") as handle:
                return handle.read(max_bytes)
        with open(location, "rb") as handle:
            if location.endswith(".mo"):
                return handle.read()
            return handle.read(max_bytes)
    except (OSError, EOFError, zipfile.BadZipFile, gzip.BadGzipFile):
        return None


def _catalog_text(raw: bytes) -> str | None:
    """A gettext catalog's translated messages, one per line: real sentences in one language."""
    try:
        catalog = gettext.GNUTranslations(io.BytesIO(raw))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    messages = [text for key, text in catalog._catalog.items() if key and isinstance(text, str)]
    return "\n".join(messages)


def sample_corpus(
    roots: Iterable[SourceRoot],
    max_files_per_split: dict[str, int],
    min_train_files: int = 30,
    min_chars: int = MIN_SOURCE_CHARS,
) -> dict[str, list[tuple[SourceFile, str]]]:
    """Per label, up to ``max_files_per_split[split]`` distinct readable files with their text.

    Files are taken in hash order, so the sample is the same on every run and every machine
    that has the same files; exact duplicate texts are kept once. Labels with fewer than
    ``min_train_files`` training files are left out: too few to learn a language from.
    """
    by_label: dict[tuple[str, str], list[str]] = defaultdict(list)
    for location, label in discover_labelled_locations(roots):
        by_label[(label, split_of(location))].append(location)
    corpus: dict[str, list[tuple[SourceFile, str]]] = defaultdict(list)
    for (label, split), locations in sorted(by_label.items()):
        seen_digests: set[int] = set()
        taken = 0
        for location in sorted(locations, key=xxhash.xxh64_intdigest):
            if taken >= max_files_per_split[split]:
                break
            text = read_source_text(location)
            if text is None or len(text.strip()) < min_chars:
                continue
            digest = xxhash.xxh64_intdigest(text)
            if digest in seen_digests:
                continue
            seen_digests.add(digest)
            corpus[label].append((SourceFile(location, label, split), text))
            taken += 1
    return {
        label: items
        for label, items in corpus.items()
        if sum(file.split == "train" for file, _ in items) >= min_train_files
    }
