import dataclasses
import gettext
import gzip
import json
import unicodedata
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import zstandard

from corpusmill.pipelines.demo_corpus import (
    CodeRoot,
    DemoCorpusError,
    DemoInputs,
    assemble_demo_inputs,
    debian_machine_sources,
    fair_quotas,
    read_demo_inputs,
    read_mo_translations,
)

CODE_LANGUAGE_BY_SUFFIX = {".py": "python", ".h": "c", ".sh": "shell", ".pm": "perl", ".js": "javascript"}
REQUIRED_BAD_CASES = {
    "malformed_json",
    "invalid_utf8",
    "missing_text",
    "text_not_string",
    "empty_text",
    "whitespace_text",
    "not_an_object",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoInputs:
    return assemble_demo_inputs(tmp_path_factory.mktemp("demo") / "raw")


def _input_path(demo: DemoInputs, source_name: str) -> Path:
    return {name: path for path, name in demo.ingest_inputs}[source_name]


def _read_jsonl(path: Path) -> list[dict]:
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    elif path.name.endswith(".zst"):
        raw = zstandard.ZstdDecompressor().decompress(raw)
    return [json.loads(line) for line in raw.splitlines()]


def _valid_code_files(demo: DemoInputs) -> list[Path]:
    code_dir = _input_path(demo, "source_code")
    return [path for path in sorted(code_dir.rglob("*")) if path.is_file() and path not in demo.bad_code_files]


def _script_share(text: str, script_word: str) -> float:
    letters = [char for char in text if char.isalpha()]
    return sum(script_word in unicodedata.name(char, "") for char in letters) / max(len(letters), 1)


def _bad_line_case(line: bytes) -> str:
    """Classify a raw JSONL line the way a strict ingest has to."""
    try:
        decoded = line.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    try:
        value = json.loads(decoded)
    except json.JSONDecodeError:
        return "malformed_json"
    if not isinstance(value, dict):
        return "not_an_object"
    if "text" not in value:
        return "missing_text"
    if not isinstance(value["text"], str):
        return "text_not_string"
    if not value["text"]:
        return "empty_text"
    return "whitespace_text" if not value["text"].strip() else "valid"


def test_writes_all_three_formats_with_text_and_metadata(demo: DemoInputs) -> None:
    suffixes = {path.name.split(".", 1)[-1] if path.is_file() else "dir" for path, _ in demo.ingest_inputs}
    assert {"jsonl.gz", "jsonl.zst", "parquet", "dir", "jsonl"} <= suffixes
    for source_name in ("debian_docs", "reference_docs"):
        records = _read_jsonl(_input_path(demo, source_name))
        assert len(records) == demo.docs_per_source[source_name]
        assert all(record["text"].strip() and record["title"] and Path(record["path"]).exists() for record in records)
    table = pq.read_table(_input_path(demo, "translations"))
    assert {"text", "lang_hint", "domain", "path"} <= set(table.column_names)
    assert table.num_rows == demo.docs_per_kind["multilingual"]
    assert len(_valid_code_files(demo)) == demo.docs_per_kind["code"]


def test_has_every_kind_and_the_reported_totals(demo: DemoInputs) -> None:
    assert all(demo.docs_per_kind[kind] > 0 for kind in ("english", "multilingual", "code"))
    assert demo.missing == ()
    assert 1500 <= sum(demo.docs_per_kind.values()) <= 4000
    assert 5_000_000 <= demo.total_bytes <= 20_000_000
    input_files = [path for path in demo.raw_dir.rglob("*") if path.is_file() and path.name != "inputs.json"]
    assert demo.total_bytes == sum(path.stat().st_size for path in input_files)


def test_inputs_json_describes_the_folder(demo: DemoInputs) -> None:
    assert read_demo_inputs(demo.raw_dir) == demo
    assert all(path.exists() for path, _ in demo.ingest_inputs)


def test_multilingual_catalogs_are_decoded_in_their_own_scripts(demo: DemoInputs) -> None:
    records = pq.read_table(_input_path(demo, "translations")).to_pylist()
    text_by_lang: dict[str, str] = {}
    for record in records:
        text_by_lang[record["lang_hint"]] = text_by_lang.get(record["lang_hint"], "") + record["text"]
    assert len(text_by_lang) >= 5
    assert set(text_by_lang) == set(demo.languages)
    assert _script_share(text_by_lang["ru"], "CYRILLIC") > 0.8
    assert _script_share(text_by_lang["ja"], "HIRAGANA") + _script_share(text_by_lang["ja"], "KATAKANA") > 0.2
    assert _script_share(text_by_lang["zh_CN"], "CJK UNIFIED IDEOGRAPH") > 0.5
    assert any(umlaut in text_by_lang["de"] for umlaut in "äöüß")


def test_code_tree_spans_languages_with_meaningful_paths(demo: DemoInputs) -> None:
    files = _valid_code_files(demo)
    languages = Counter(CODE_LANGUAGE_BY_SUFFIX.get(path.suffix) for path in files)
    languages.pop(None, None)
    assert len(languages) >= 4
    code_dir = _input_path(demo, "source_code")
    relative = {path.relative_to(code_dir).as_posix() for path in files}
    assert all(path.split("/", 1)[0] in demo.code_languages for path in relative)
    assert all(path.read_bytes().decode("utf-8").strip() for path in files)
    stdlib_python = [path for path in relative if path.startswith("python/")]
    assert stdlib_python and all(not path.startswith("python/site-packages/") for path in stdlib_python)


def test_natural_exact_duplicates_are_kept(demo: DemoInputs) -> None:
    english = [r["text"] for name in ("debian_docs", "reference_docs") for r in _read_jsonl(_input_path(demo, name))]
    multilingual = pq.read_table(_input_path(demo, "translations")).column("text").to_pylist()
    code = [path.read_text() for path in _valid_code_files(demo)]
    texts = english + multilingual + code
    assert len(english) - len(set(english)) > 10
    assert demo.exact_duplicate_docs == len(texts) - len(set(texts))


def test_bad_jsonl_lines_break_in_every_required_way(demo: DemoInputs) -> None:
    lines = _input_path(demo, "bad_records").read_bytes().splitlines()
    assert [_bad_line_case(line) for line in lines] == list(demo.bad_jsonl_cases)
    assert REQUIRED_BAD_CASES <= set(demo.bad_jsonl_cases)
    assert "valid" in demo.bad_jsonl_cases


def test_bad_code_files_are_a_binary_and_a_one_byte_corruption(demo: DemoInputs) -> None:
    binary, corrupted = demo.bad_code_files
    for bad in (binary, corrupted):
        with pytest.raises(UnicodeDecodeError):
            bad.read_bytes().decode("utf-8")
    original = corrupted.with_name(corrupted.name.replace("_invalid_utf8", ""))
    assert corrupted.read_bytes().replace(b"\xff", b"", 1) == original.read_bytes()


def _tree(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in root.rglob("*") if path.is_file()}


def test_same_seed_gives_identical_bytes_and_reruns_replace_earlier_inputs(tmp_path: Path) -> None:
    first = assemble_demo_inputs(tmp_path / "first", max_docs_per_kind=40, seed=0)
    second = assemble_demo_inputs(tmp_path / "second", max_docs_per_kind=40, seed=0)
    assert _tree(tmp_path / "first") == _tree(tmp_path / "second")
    assert first.docs_per_kind == second.docs_per_kind

    assemble_demo_inputs(tmp_path / "second", max_docs_per_kind=40, seed=1)
    assemble_demo_inputs(tmp_path / "fresh", max_docs_per_kind=40, seed=1)
    assert _tree(tmp_path / "second") == _tree(tmp_path / "fresh") != _tree(tmp_path / "first")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["first", "fresh", "second"]


def test_pick_stays_stable_when_the_machine_gains_files(tmp_path: Path) -> None:
    stdlib_modules = sorted(Path(json.__file__).parent.parent.glob("*.py"))[:40]
    code_root = tmp_path / "site"
    code_root.mkdir()
    for module in stdlib_modules[:30]:
        (code_root / module.name).write_bytes(module.read_bytes())
    sources = dataclasses.replace(
        debian_machine_sources(),
        locale_dir=tmp_path / "no_locale",
        code_roots=(CodeRoot("python", code_root, "", (".py",)),),
    )

    def picked_names(raw_dir: Path) -> set[str]:
        demo = assemble_demo_inputs(raw_dir, max_docs_per_kind=10, sources=sources)
        return {path.name for path in _valid_code_files(demo)}

    before = picked_names(tmp_path / "before")
    for module in stdlib_modules[30:]:
        (code_root / module.name).write_bytes(module.read_bytes())
    after = picked_names(tmp_path / "after")
    added = {module.name for module in stdlib_modules[30:]}
    assert len(before) == len(after) == 10
    assert after - added <= before


def test_respects_the_cap_and_shares_it_across_groups(tmp_path: Path) -> None:
    demo = assemble_demo_inputs(tmp_path / "raw", max_docs_per_kind=40)
    assert demo.docs_per_kind == {"english": 40, "multilingual": 40, "code": 40}
    lang_counts = Counter(pq.read_table(_input_path(demo, "translations")).column("lang_hint").to_pylist())
    assert len(lang_counts) >= 5 and max(lang_counts.values()) - min(lang_counts.values()) <= 1
    assert len(_valid_code_files(demo)) == 40
    assert len(demo.code_languages) >= 4


def test_machine_without_translations_still_gets_a_corpus(tmp_path: Path) -> None:
    sources = dataclasses.replace(debian_machine_sources(), locale_dir=tmp_path / "no_locale")
    demo = assemble_demo_inputs(tmp_path / "raw", max_docs_per_kind=20, sources=sources)
    assert demo.docs_per_kind["multilingual"] == 0 and demo.languages == ()
    assert "multilingual" in demo.missing
    assert "translations" not in {name for _, name in demo.ingest_inputs}
    assert not (tmp_path / "raw" / "multilingual").exists()
    assert demo.docs_per_kind["english"] == 20 and demo.docs_per_kind["code"] == 20


def test_machine_with_too_little_text_raises_a_clear_error(tmp_path: Path) -> None:
    nowhere = tmp_path / "nowhere"
    sources = dataclasses.replace(
        debian_machine_sources(), doc_dir=nowhere, license_dir=nowhere, locale_dir=nowhere, include_python_topics=False
    )
    with pytest.raises(DemoCorpusError, match="needs 2 kinds"):
        assemble_demo_inputs(tmp_path / "raw", max_docs_per_kind=5, sources=sources)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_a_folder_that_holds_other_files(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="delete it first"):
        assemble_demo_inputs(tmp_path, max_docs_per_kind=5)
    assert [path.name for path in tmp_path.iterdir()] == ["keep.txt"]


def test_mo_parser_matches_the_stdlib_gettext_catalog() -> None:
    catalog_path = Path("/usr/share/locale/de/LC_MESSAGES/coreutils.mo")
    if not catalog_path.exists():
        catalog_path = next(Path("/usr/share/locale/de/LC_MESSAGES").glob("*.mo"))
    with catalog_path.open("rb") as stream:
        reference = gettext.GNUTranslations(stream)._catalog
    singular = {value for key, value in reference.items() if key != "" and (not isinstance(key, tuple) or key[1] == 0)}
    assert set(read_mo_translations(catalog_path)) == singular


def test_fair_quotas_take_small_groups_whole_and_split_the_rest() -> None:
    assert fair_quotas({"licenses": 14, "topics": 80, "readme": 286, "copyright": 700}, 800) == {
        "licenses": 14,
        "topics": 80,
        "readme": 286,
        "copyright": 420,
    }
    assert fair_quotas({"a": 100, "b": 100, "c": 100}, 10) == {"a": 4, "b": 3, "c": 3}
    assert fair_quotas({"a": 5, "b": 7}, 100) == {"a": 5, "b": 7}
