"""Assemble the raw inputs of `corpusmill demo` from real text already on this machine.

Why: a newcomer should see every stage work on real, messy data (duplicate licence files,
ten languages, source code, broken records) without downloading anything. The inputs are
written in the three formats `ingest` reads: JSONL (gzip and zstd), Parquet, and a directory
tree with one document per file.
"""

import glob
import gzip
import hashlib
import json
import os
import shutil
import struct
import sysconfig
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from corpusmill.curation.atomic import read_json, write_json_atomic

DEFAULT_MAX_DOCS_PER_KIND = 800
# Single inputs above this are skipped: they would dominate a corpus meant to run in a minute.
MAX_FILE_BYTES = 1_000_000
# Slim images ship no translations (or no docs); two kinds of text still make a meaningful demo.
MIN_KINDS = 2
KINDS = ("english", "multilingual", "code")

# Locales in the order we prefer them: many scripts and language families first.
LANGUAGE_PREFERENCE = (
    "de", "fr", "es", "ru", "ja", "zh_CN", "it", "pt_BR", "pl", "cs",
    "uk", "ko", "tr", "nl", "sv", "pt",
)  # fmt: skip
MAX_LANGUAGES = 10
# A locale whose catalogs are smaller than this holds too little prose to be worth a language.
MIN_LANGUAGE_CATALOG_BYTES = 300_000
CATALOG_CHUNK_CHARS = 3000
# iso-codes catalogs are lists of country and currency names, not prose.
NAME_LIST_DOMAIN_PREFIXES = ("iso_", "iso-")
MO_MAGIC_LITTLE_ENDIAN = 0x950412DE
MO_MAGIC_BIG_ENDIAN = 0xDE120495

EXCLUDED_DIR_NAMES = frozenset({"__pycache__", "site-packages", "test", "tests", "idle_test"})
README_PATTERNS = ("README*", "*.txt", "*.md", "*.rst", "*.txt.gz", "*.md.gz", "*.rst.gz")
BINARY_FILE_MAX_BYTES = 256_000

DEBIAN_DOCS_SOURCE = "debian_docs"
REFERENCE_DOCS_SOURCE = "reference_docs"
TRANSLATIONS_SOURCE = "translations"
CODE_SOURCE = "source_code"
BAD_RECORDS_SOURCE = "bad_records"
DEBIAN_DOCS_JSONL = Path("english", f"{DEBIAN_DOCS_SOURCE}.jsonl.gz")
REFERENCE_DOCS_JSONL = Path("english", f"{REFERENCE_DOCS_SOURCE}.jsonl.zst")
MULTILINGUAL_PARQUET = Path("multilingual", f"{TRANSLATIONS_SOURCE}.parquet")
CODE_DIR = Path("code")
BAD_JSONL = Path("bad", "bad.jsonl")
INPUTS_MANIFEST = Path("inputs.json")
MANIFEST_FORMAT = "corpusmill-demo-inputs/1"
MANIFEST_PLAIN_FIELDS = (
    "docs_per_kind",
    "docs_per_source",
    "languages",
    "code_languages",
    "exact_duplicate_docs",
    "bad_jsonl_cases",
    "missing",
    "total_bytes",
)


Candidate = TypeVar("Candidate")
Loaded = TypeVar("Loaded")


class DemoCorpusError(RuntimeError):
    """This machine holds too little real text to assemble a demo corpus."""


@dataclass(frozen=True)
class CodeRoot:
    """A folder of real source files of one language, copied under `code/<language>/<label>/`."""

    language: str
    root: Path
    label: str
    suffixes: tuple[str, ...]
    shebang_interpreters: tuple[str, ...] = ()
    excluded_suffixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class MachineSources:
    """Where to look for real text; tests point these at missing folders to check degradation."""

    doc_dir: Path
    license_dir: Path
    locale_dir: Path
    code_roots: tuple[CodeRoot, ...]
    binary_file_patterns: tuple[str, ...]
    include_python_topics: bool = True


@dataclass(frozen=True)
class DemoInputs:
    """What `assemble_demo_inputs` wrote; counts are valid documents, bad inputs excluded.

    `total_bytes` is the size of the input files, inputs.json not included.
    """

    raw_dir: Path
    ingest_inputs: tuple[tuple[Path, str], ...]
    docs_per_kind: Mapping[str, int]
    docs_per_source: Mapping[str, int]
    languages: tuple[str, ...]
    code_languages: tuple[str, ...]
    exact_duplicate_docs: int
    bad_jsonl_cases: tuple[str, ...]
    bad_code_files: tuple[Path, ...]
    missing: tuple[str, ...]
    total_bytes: int


@dataclass(frozen=True)
class _CodeFile:
    relative_path: PurePosixPath
    data: bytes


def debian_machine_sources() -> MachineSources:
    """The sources a Debian-based image with Python has (any of them may be absent)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    multiarch_lib = Path("/usr/lib") / (sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu")
    code_roots = [
        CodeRoot("python", stdlib, "", (".py",)),
        CodeRoot("c", Path("/usr/include"), "", (".h",)),
        CodeRoot("shell", Path("/usr/bin"), "bin", (".sh",), ("sh", "bash", "dash")),
        CodeRoot("shell", Path("/usr/sbin"), "sbin", (".sh",), ("sh", "bash", "dash")),
        CodeRoot("shell", Path("/etc/init.d"), "init.d", (".sh",), ("sh", "bash", "dash")),
        CodeRoot("perl", Path("/usr/share/perl5"), "vendor", (".pm",)),
        CodeRoot("perl", multiarch_lib / "perl-base", "base", (".pm",)),
        *(CodeRoot("perl", Path(p), "core", (".pm",)) for p in sorted(glob.glob("/usr/share/perl/5*"))),
        CodeRoot("javascript", Path("/usr/share/javascript"), "share", (".js",), (), (".min.js",)),
        CodeRoot("javascript", Path("/usr/share/nodejs"), "nodejs", (".js",), (), (".min.js",)),
        # npm's own tree only: other global npm installs come and go and would change the pick.
        CodeRoot("javascript", Path("/usr/lib/node_modules/npm"), "npm", (".js",), (), (".min.js",)),
        *(CodeRoot("cmake", Path(p), Path(p).name, (".cmake",)) for p in sorted(glob.glob("/usr/share/cmake*"))),
        CodeRoot("cmake", multiarch_lib / "cmake", "lib", (".cmake",)),
        CodeRoot("make", Path("/usr/share/dpkg"), "dpkg", (".mk", "Makefile")),
    ]
    return MachineSources(
        doc_dir=Path("/usr/share/doc"),
        license_dir=Path("/usr/share/common-licenses"),
        locale_dir=Path("/usr/share/locale"),
        code_roots=tuple(code_roots),
        binary_file_patterns=("/usr/share/pixmaps/*.png", "/usr/share/doc/*/changelog.Debian.gz"),
    )


def fair_quotas(available: Mapping[str, int], total: int) -> dict[str, int]:
    """Split `total` so small groups are taken whole and the large ones share the rest evenly."""
    quotas: dict[str, int] = {}
    remaining = total
    pending = sorted(available, key=lambda group: (available[group], group))
    while pending and available[pending[0]] <= remaining // len(pending):
        smallest = pending.pop(0)
        quotas[smallest] = available[smallest]
        remaining -= available[smallest]
    if pending:
        share, extra = divmod(remaining, len(pending))
        for rank, group in enumerate(sorted(pending)):
            quotas[group] = share + (1 if rank < extra else 0)
    return quotas


def _seeded_pick(
    candidates: Sequence[Candidate],
    quota: int,
    rank: Callable[[Candidate], bytes],
    load: Callable[[Candidate], Loaded | None],
) -> list[Loaded]:
    """Load candidates in seeded rank order until `quota` loaded; keep the input order.

    Ranking each candidate by a hash of its own name, not shuffling positions, keeps the pick
    stable when a package install elsewhere on the machine adds or removes other candidates.
    """
    picked: dict[int, Loaded] = {}
    for index in sorted(range(len(candidates)), key=lambda i: rank(candidates[i])):
        if len(picked) == quota:
            break
        loaded = load(candidates[index])
        if loaded is not None:
            picked[index] = loaded
    return [picked[index] for index in sorted(picked)]


def _pick_groups(
    groups: Mapping[str, Sequence[Candidate]],
    total: int,
    seed: int,
    name_of: Callable[[Candidate], str],
    load: Callable[[Candidate], Loaded | None],
) -> dict[str, list[Loaded]]:
    """Fair quotas per group; inside a group, a seeded hash of each candidate's name orders the pick."""
    quotas = fair_quotas({group: len(items) for group, items in groups.items()}, total)

    def picker(group: str) -> Callable[[Candidate], bytes]:
        return lambda item: hashlib.blake2b(f"{seed}:{group}:{name_of(item)}".encode(), digest_size=8).digest()

    return {group: _seeded_pick(items, quotas[group], picker(group), load) for group, items in groups.items()}


def _walk_files(root: Path) -> Iterator[Path]:
    """Files under `root` in sorted order, without test and cache folders; nothing if absent."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(name for name in dirnames if name not in EXCLUDED_DIR_NAMES)
        for name in sorted(filenames):
            yield Path(dirpath, name)


def _read_limited(path: Path) -> bytes | None:
    """The file's bytes (gunzipped for .gz), or None if unreadable, empty or over the size cap."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            return None
        with gzip.open(path) if path.suffix == ".gz" else path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except (OSError, EOFError):
        return None
    return data if 0 < len(data) <= MAX_FILE_BYTES else None


def _decode_text(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.strip() else None


def _unique_files(paths: Iterable[Path]) -> list[Path]:
    """Drop paths that resolve to a file already listed (symlinks are not natural duplicates)."""
    seen: set[Path] = set()
    unique = []
    for path in paths:
        real = path.resolve()
        if real not in seen and real.is_file():
            seen.add(real)
            unique.append(path)
    return unique


def _file_record(path: Path) -> dict[str, str] | None:
    text = _decode_text(_read_limited(path))
    if text is None:
        return None
    return {"text": text, "title": f"{path.parent.name}/{path.name}", "url": path.resolve().as_uri(), "path": str(path)}


def _python_topic_records() -> list[dict[str, str]]:
    """The language-reference topics pydoc ships: real English prose in every CPython."""
    from pydoc_data import topics as topics_module

    path = Path(topics_module.__file__)
    return [
        {"text": text, "title": key, "url": f"{path.as_uri()}#{key}", "path": str(path)}
        for key, text in sorted(topics_module.topics.items())
        if text.strip()
    ]


def _collect_english(sources: MachineSources, max_docs: int, seed: int) -> dict[str, list[dict[str, str]]]:
    """English prose grouped by ingest source: Debian package docs, and licences + Python topics."""
    package_dirs = sorted(path for path in sources.doc_dir.glob("*") if path.is_dir())
    readmes = _unique_files(
        path
        for package in package_dirs
        for path in sorted({p for pattern in README_PATTERNS for p in package.glob(pattern)})
    )
    copyrights = _unique_files(package / "copyright" for package in package_dirs)
    licenses = _unique_files(sorted(sources.license_dir.glob("*")))
    topics = _python_topic_records() if sources.include_python_topics else []
    file_groups = {"readme": readmes, "copyright": copyrights, "license": licenses}
    groups: dict[str, Sequence[Path | dict[str, str]]] = {**file_groups, "python_topics": topics}
    picked = _pick_groups(
        groups,
        max_docs,
        seed,
        name_of=lambda item: item["url"] if isinstance(item, dict) else str(item),
        load=lambda item: item if isinstance(item, dict) else _file_record(item),
    )
    return {
        DEBIAN_DOCS_SOURCE: picked["readme"] + picked["copyright"],
        REFERENCE_DOCS_SOURCE: picked["license"] + picked["python_topics"],
    }


def read_mo_translations(path: Path) -> list[str]:
    """The translated strings of a GNU gettext .mo catalog, decoded with its declared charset."""
    data = path.read_bytes()
    magic = int.from_bytes(data[:4], "little") if len(data) >= 28 else None
    byte_order = {MO_MAGIC_LITTLE_ENDIAN: "<", MO_MAGIC_BIG_ENDIAN: ">"}.get(magic)
    if byte_order is None:
        raise ValueError(f"{path} is not a GNU gettext .mo catalog (bad magic number)")
    count, originals_offset, translations_offset = struct.unpack(f"{byte_order}3I", data[8:20])

    def entry(table_offset: int, index: int) -> bytes:
        length, offset = struct.unpack_from(f"{byte_order}2I", data, table_offset + 8 * index)
        return data[offset : offset + length]

    pairs = [(entry(originals_offset, i), entry(translations_offset, i)) for i in range(count)]
    header = next((translation for original, translation in pairs if not original), b"")
    charset = "utf-8"
    for line in header.decode("ascii", "replace").splitlines():
        if line.lower().startswith("content-type:") and "charset=" in line:
            charset = line.split("charset=", 1)[1].strip() or charset
    # Plural entries hold NUL-separated forms; the first (singular) form is enough prose.
    return [translation.split(b"\x00", 1)[0].decode(charset) for original, translation in pairs if original]


def _catalog_chunks(path: Path, lang: str) -> list[dict[str, str]]:
    """A catalog's translations joined into prose-sized documents; [] for unreadable catalogs."""
    if path.stat().st_size > MAX_FILE_BYTES:
        return []
    try:
        translations = [text for text in read_mo_translations(path) if text.strip()]
    except (ValueError, LookupError, UnicodeDecodeError, struct.error):
        return []
    domain = path.stem
    chunks: list[list[str]] = [[]]
    chunk_chars = 0
    for text in translations:
        if chunk_chars >= CATALOG_CHUNK_CHARS:
            chunks.append([])
            chunk_chars = 0
        chunks[-1].append(text)
        chunk_chars += len(text) + 1
    return [
        {
            "text": "\n".join(lines),
            "title": f"{domain} ({lang}) part {number}",
            "lang_hint": lang,
            "domain": domain,
            "path": str(path),
        }
        for number, lines in enumerate(chunks, start=1)
        if lines
    ]


def _language_catalogs(locale_dir: Path) -> dict[str, list[Path]]:
    """Prose catalogs of the preferred locales that hold enough text, in preference order."""
    chosen: dict[str, list[Path]] = {}
    for lang in LANGUAGE_PREFERENCE:
        catalogs = [
            path
            for path in sorted((locale_dir / lang / "LC_MESSAGES").glob("*.mo"))
            if not path.name.startswith(NAME_LIST_DOMAIN_PREFIXES) and path.is_file()
        ]
        if sum(path.stat().st_size for path in catalogs) >= MIN_LANGUAGE_CATALOG_BYTES:
            chosen[lang] = catalogs
        if len(chosen) == MAX_LANGUAGES:
            break
    return chosen


def _collect_multilingual(sources: MachineSources, max_docs: int, seed: int) -> list[dict[str, str]]:
    chunks_per_language = {
        lang: [chunk for path in catalogs for chunk in _catalog_chunks(path, lang)]
        for lang, catalogs in _language_catalogs(sources.locale_dir).items()
    }
    picked = _pick_groups(
        chunks_per_language, max_docs, seed, name_of=lambda chunk: chunk["title"], load=lambda chunk: chunk
    )
    return [chunk for lang in chunks_per_language for chunk in picked[lang]]


def _shebang_interpreter(path: Path) -> str | None:
    try:
        with path.open("rb") as stream:
            first_line = stream.readline(200)
    except OSError:
        return None
    if not first_line.startswith(b"#!"):
        return None
    words = first_line[2:].decode("ascii", "replace").split()
    if words and words[0].endswith("/env") and len(words) > 1:
        words = words[1:]
    return words[0].rsplit("/", 1)[-1] if words else None


def _code_candidates(code_root: CodeRoot) -> Iterator[tuple[Path, PurePosixPath]]:
    """(source file, path under code/) for each file of the root's language."""
    for path in _walk_files(code_root.root):
        name = path.name
        if name.endswith(code_root.excluded_suffixes):
            continue
        has_suffix = name.endswith(code_root.suffixes)
        if has_suffix or (
            code_root.shebang_interpreters and _shebang_interpreter(path) in code_root.shebang_interpreters
        ):
            relative = PurePosixPath(code_root.language, code_root.label, path.relative_to(code_root.root).as_posix())
            yield path, relative if has_suffix else relative.with_name(name + code_root.suffixes[0])


def _load_code_file(candidate: tuple[Path, PurePosixPath]) -> _CodeFile | None:
    path, relative = candidate
    data = _read_limited(path)
    return _CodeFile(relative, data) if _decode_text(data) is not None else None


def _collect_code(sources: MachineSources, max_docs: int, seed: int) -> list[_CodeFile]:
    candidates_per_language: dict[str, list[tuple[Path, PurePosixPath]]] = {}
    seen_real_paths: set[Path] = set()
    seen_relative: set[PurePosixPath] = set()
    for code_root in sources.code_roots:
        for path, relative in _code_candidates(code_root):
            real = path.resolve()
            if real not in seen_real_paths and relative not in seen_relative:
                seen_real_paths.add(real)
                seen_relative.add(relative)
                candidates_per_language.setdefault(code_root.language, []).append((path, relative))
    picked = _pick_groups(
        candidates_per_language, max_docs, seed, name_of=lambda candidate: str(candidate[1]), load=_load_code_file
    )
    return sorted((code_file for files in picked.values() for code_file in files), key=lambda f: f.relative_path)


def _bad_code_files(sources: MachineSources, code_files: list[_CodeFile]) -> list[_CodeFile]:
    """A real binary asset and a real source file with one invalid UTF-8 byte after its first line."""
    if not code_files:
        return []
    bad: list[_CodeFile] = []
    for pattern in sources.binary_file_patterns:
        binary = next(
            (Path(p) for p in sorted(glob.glob(pattern)) if 0 < os.path.getsize(p) <= BINARY_FILE_MAX_BYTES), None
        )
        if binary is not None:
            bad.append(_CodeFile(PurePosixPath("assets", binary.name), binary.read_bytes()))
            break
    original = code_files[0]
    first_line_end = original.data.find(b"\n") + 1
    corrupted = original.data[:first_line_end] + b"\xff" + original.data[first_line_end:]
    name = original.relative_path
    bad.append(_CodeFile(name.with_name(f"{name.stem}_invalid_utf8{name.suffix}"), corrupted))
    return bad


def _json_line(record: object) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode() + b"\n"


def _bad_jsonl_lines(texts: Sequence[str]) -> list[tuple[str, bytes]]:
    """(case name, line) pairs: two valid controls, then each way a raw record can be broken."""
    snippets = [text.strip()[:400] for text in texts[:3]]
    first, second, third = (snippets * 3)[:3]
    head, _, tail = second.partition(" ")
    malformed = json.dumps({"text": third, "title": "truncated record"}, ensure_ascii=False)
    return [
        ("valid", _json_line({"text": first, "title": "valid record"})),
        ("malformed_json", malformed[: len(malformed) // 2].encode() + b"\n"),
        (
            "invalid_utf8",
            b'{"text": ' + json.dumps(head + " ").encode()[:-1] + b"\xff" + json.dumps(tail).encode()[1:] + b"}\n",
        ),
        ("missing_text", _json_line({"title": "record without text", "body": first})),
        ("text_not_string", _json_line({"text": len(first), "title": "numeric text"})),
        ("empty_text", _json_line({"text": "", "title": "empty text"})),
        ("whitespace_text", _json_line({"text": " \n\t  \n", "title": "whitespace text"})),
        ("not_an_object", _json_line([second, third])),
        ("valid", _json_line({"text": second, "title": "valid record"})),
    ]


def _write_jsonl(path: Path, records: Sequence[dict[str, str]]) -> None:
    """Write JSONL compressed by suffix, with gzip's timestamp pinned so reruns give equal bytes."""
    payload = b"".join(_json_line(record) for record in records)
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    elif path.name.endswith(".zst"):
        payload = zstandard.ZstdCompressor(level=3).compress(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)


def _write_parquet(path: Path, records: Sequence[dict[str, str]]) -> None:
    columns = ("text", "title", "lang_hint", "domain", "path")
    table = pa.table({name: pa.array([record[name] for record in records], pa.string()) for name in columns})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=256)


def _write_code_tree(code_dir: Path, files: Sequence[_CodeFile]) -> None:
    for code_file in files:
        destination = code_dir.joinpath(*code_file.relative_path.parts)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(code_file.data)


def _require_enough_kinds(docs_per_kind: Mapping[str, int], sources: MachineSources) -> None:
    found_kinds = [kind for kind in KINDS if docs_per_kind[kind]]
    if len(found_kinds) < MIN_KINDS:
        looked_in = [sources.doc_dir, sources.license_dir, sources.locale_dir, *(r.root for r in sources.code_roots)]
        raise DemoCorpusError(
            f"found real text of only {found_kinds} among {list(KINDS)} on this machine, the demo needs {MIN_KINDS} "
            f"kinds. Looked in {sorted({str(path) for path in looked_in})}. Install Debian packages that ship docs, "
            "translations or sources (e.g. `apt-get install perl python3 libc6-dev`), "
            "or run `corpusmill ingest` on your own files instead."
        )


def _write_inputs(
    raw_dir: Path,
    prose_jsonl: Mapping[Path, Sequence[dict[str, str]]],
    multilingual: Sequence[dict[str, str]],
    code_files: Sequence[_CodeFile],
    bad_lines: Sequence[tuple[str, bytes]],
) -> None:
    for relative_path, records in prose_jsonl.items():
        if records:
            _write_jsonl(raw_dir / relative_path, records)
    if multilingual:
        _write_parquet(raw_dir / MULTILINGUAL_PARQUET, multilingual)
    _write_code_tree(raw_dir / CODE_DIR, code_files)
    bad_path = raw_dir / BAD_JSONL
    bad_path.parent.mkdir(parents=True)
    bad_path.write_bytes(b"".join(line for _, line in bad_lines))


def _collect_and_write(staging: Path, final_dir: Path, sources: MachineSources, max_docs: int, seed: int) -> DemoInputs:
    english = _collect_english(sources, max_docs, seed)
    multilingual = _collect_multilingual(sources, max_docs, seed)
    code_files = _collect_code(sources, max_docs, seed)
    docs_per_source = {
        DEBIAN_DOCS_SOURCE: len(english[DEBIAN_DOCS_SOURCE]),
        REFERENCE_DOCS_SOURCE: len(english[REFERENCE_DOCS_SOURCE]),
        TRANSLATIONS_SOURCE: len(multilingual),
        CODE_SOURCE: len(code_files),
    }
    docs_per_kind = {
        "english": docs_per_source[DEBIAN_DOCS_SOURCE] + docs_per_source[REFERENCE_DOCS_SOURCE],
        "multilingual": len(multilingual),
        "code": len(code_files),
    }
    _require_enough_kinds(docs_per_kind, sources)

    prose_records = english[DEBIAN_DOCS_SOURCE] + english[REFERENCE_DOCS_SOURCE] + multilingual
    texts = [record["text"] for record in prose_records] + [code_file.data.decode() for code_file in code_files]
    bad_lines = _bad_jsonl_lines(texts)
    bad_code = _bad_code_files(sources, code_files)
    prose_jsonl = {DEBIAN_DOCS_JSONL: english[DEBIAN_DOCS_SOURCE], REFERENCE_DOCS_JSONL: english[REFERENCE_DOCS_SOURCE]}
    _write_inputs(staging, prose_jsonl, multilingual, [*code_files, *bad_code], bad_lines)

    input_paths = {
        DEBIAN_DOCS_SOURCE: DEBIAN_DOCS_JSONL,
        REFERENCE_DOCS_SOURCE: REFERENCE_DOCS_JSONL,
        TRANSLATIONS_SOURCE: MULTILINGUAL_PARQUET,
        CODE_SOURCE: CODE_DIR,
    }
    ingest_inputs = [(final_dir / input_paths[source], source) for source, count in docs_per_source.items() if count]
    code_languages = tuple(sorted({code_file.relative_path.parts[0] for code_file in code_files}))
    absent_code_languages = sorted({root.language for root in sources.code_roots} - set(code_languages))
    return DemoInputs(
        raw_dir=final_dir,
        ingest_inputs=(*ingest_inputs, (final_dir / BAD_JSONL, BAD_RECORDS_SOURCE)),
        docs_per_kind=docs_per_kind,
        docs_per_source={source: count for source, count in docs_per_source.items() if count},
        languages=tuple(dict.fromkeys(record["lang_hint"] for record in multilingual)),
        code_languages=code_languages,
        exact_duplicate_docs=len(texts) - len(set(texts)),
        bad_jsonl_cases=tuple(case for case, _ in bad_lines),
        bad_code_files=tuple(final_dir / CODE_DIR / code_file.relative_path for code_file in bad_code),
        missing=(
            *(kind for kind in KINDS if not docs_per_kind[kind]),
            *(f"code/{lang}" for lang in absent_code_languages),
        ),
        total_bytes=sum(path.stat().st_size for path in staging.rglob("*") if path.is_file()),
    )


def _manifest(inputs: DemoInputs) -> dict[str, object]:
    """inputs.json content: paths relative to the folder, so reruns and moved folders compare equal."""

    def relative(path: Path) -> str:
        return path.relative_to(inputs.raw_dir).as_posix()

    return {
        "format": MANIFEST_FORMAT,
        "ingest_inputs": [{"path": relative(path), "source": source} for path, source in inputs.ingest_inputs],
        "bad_code_files": [relative(path) for path in inputs.bad_code_files],
        **{name: getattr(inputs, name) for name in MANIFEST_PLAIN_FIELDS},
    }


def read_demo_inputs(raw_dir: Path) -> DemoInputs:
    """The description `assemble_demo_inputs` left in `raw_dir/inputs.json`."""
    raw_dir = Path(raw_dir)
    manifest = read_json(raw_dir / INPUTS_MANIFEST)
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{raw_dir / INPUTS_MANIFEST} was not written by this version of the demo assembler")
    return DemoInputs(
        raw_dir=raw_dir,
        ingest_inputs=tuple((raw_dir / item["path"], item["source"]) for item in manifest["ingest_inputs"]),
        docs_per_kind=manifest["docs_per_kind"],
        docs_per_source=manifest["docs_per_source"],
        languages=tuple(manifest["languages"]),
        code_languages=tuple(manifest["code_languages"]),
        exact_duplicate_docs=manifest["exact_duplicate_docs"],
        bad_jsonl_cases=tuple(manifest["bad_jsonl_cases"]),
        bad_code_files=tuple(raw_dir / path for path in manifest["bad_code_files"]),
        missing=tuple(manifest["missing"]),
        total_bytes=manifest["total_bytes"],
    )


def _holds_earlier_demo_inputs(raw_dir: Path) -> bool:
    try:
        read_demo_inputs(raw_dir)
    except (OSError, ValueError, AttributeError, KeyError):
        return False
    return True


def _check_replaceable(raw_dir: Path) -> None:
    """Only a missing or empty folder, or one holding earlier demo inputs, may be (re)written."""
    if raw_dir.exists() and not raw_dir.is_dir():
        raise FileExistsError(f"{raw_dir} is a file; pass a folder path for the demo inputs")
    if raw_dir.exists() and any(raw_dir.iterdir()) and not _holds_earlier_demo_inputs(raw_dir):
        raise FileExistsError(
            f"{raw_dir} is not empty and holds no earlier demo inputs ({INPUTS_MANIFEST}); "
            "pass a new path or delete it first"
        )


def _move_into_place(staging: Path, raw_dir: Path) -> None:
    """Replace `raw_dir` by the finished `staging` folder, so readers never see half an input set."""
    if raw_dir.exists():
        retired = raw_dir.with_name(f"{staging.name}-retired")
        raw_dir.rename(retired)
        staging.rename(raw_dir)
        shutil.rmtree(retired)
    else:
        staging.rename(raw_dir)


def assemble_demo_inputs(
    raw_dir: Path,
    *,
    max_docs_per_kind: int = DEFAULT_MAX_DOCS_PER_KIND,
    seed: int = 0,
    sources: MachineSources | None = None,
) -> DemoInputs:
    """Write the demo's raw inputs into `raw_dir` (new, empty, or an earlier demo's) and describe them.

    Layout: english/debian_docs.jsonl.gz, english/reference_docs.jsonl.zst,
    multilingual/translations.parquet, code/<language>/... (one document per file, plus one
    binary and one invalid-UTF-8 file), bad/bad.jsonl, and inputs.json (see `read_demo_inputs`),
    written last. Same machine and seed -> same bytes.
    """
    if max_docs_per_kind < 1:
        raise ValueError(f"max_docs_per_kind must be at least 1, got {max_docs_per_kind}")
    raw_dir = Path(raw_dir).absolute()
    _check_replaceable(raw_dir)
    staging = raw_dir.with_name(f".{raw_dir.name}.partial-{uuid.uuid4().hex[:12]}")
    staging.mkdir(parents=True)
    try:
        inputs = _collect_and_write(staging, raw_dir, sources or debian_machine_sources(), max_docs_per_kind, seed)
        write_json_atomic(staging / INPUTS_MANIFEST, _manifest(inputs))
        _move_into_place(staging, raw_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return inputs
