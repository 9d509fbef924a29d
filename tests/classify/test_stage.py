"""`corpusmill classify` end to end on Ray: labels, accounting, resume, and model training."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpusmill.curation.classify.labels import CATEGORIES, CODE_LANG_SOURCES
from corpusmill.curation.classify.stage import ClassifyOptions, classify_dataset
from corpusmill.curation.dataset import Dataset
from corpusmill.curation.stats import StageStats
from corpusmill.pipelines.cli import main, parse
from corpusmill.pipelines.execution import RayExecutor

pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.fixture
def mixed_input(tmp_path: Path, stdlib_dir: Path, catalog_document, first_match) -> Path:
    """Two shards of real documents: code with and without paths, prose, and one blank text."""
    directory = tmp_path / "input"
    directory.mkdir()
    python_files = sorted(stdlib_dir.glob("*.py"))[:12]
    first = {
        "id": [f"py{i}" for i in range(12)],
        "text": [path.read_text() for path in python_files],
        "source": ["stdlib"] * 12,
        "path": [path.name if i % 2 else None for i, path in enumerate(python_files)],
        "rank": list(range(12)),
    }
    locales = ["de", "fr", "es", "ru", "ja"]
    second = {
        "id": [f"po-{locale}" for locale in locales] + ["readme", "blank"],
        "text": [catalog_document(locale) for locale in locales]
        + [first_match("/usr/share/common-licenses/GPL-3").read_text()[:4000], "  \n "],
        "source": ["catalogs"] * 5 + ["licenses", "broken"],
        "path": [None] * 7,
        "rank": list(range(7)),
    }
    pq.write_table(pa.table(first), directory / "part-0.parquet")
    pq.write_table(pa.table(second), directory / "part-1.parquet")
    return directory


def test_classify_labels_everything_and_accounts_for_every_document(mixed_input: Path, tmp_path: Path) -> None:
    out = tmp_path / "classified"
    result = classify_dataset(ClassifyOptions(input=str(mixed_input), out=str(out)), executor=RayExecutor())
    manifest = result.manifest
    rows = {row["id"]: row for row in Dataset.open(out).read_table().to_pylist()}
    assert len(rows) == 18 and "blank" not in rows
    for i in range(12):
        row = rows[f"py{i}"]
        assert (row["category"], row["code_lang"]) == ("code", "Python"), row["id"]
        assert row["code_lang_source"] == ("path" if i % 2 else "content") and row["rank"] == i
    assert [rows[f"po-{locale}"]["lang"] for locale in ["de", "fr", "es", "ru", "ja"]] == ["de", "fr", "es", "ru", "ja"]
    assert {rows[f"po-{locale}"]["category"] for locale in ["de", "fr", "es", "ru", "ja"]} == {"multilingual"}
    assert (rows["readme"]["lang"], rows["readme"]["category"]) == ("en", "english")
    assert {"lang", "lang_score", "category", "code_lang", "code_lang_source", "rank", "path"} <= set(manifest.columns)
    assert {row["category"] for row in rows.values()} <= set(CATEGORIES)
    assert {row["code_lang_source"] for row in rows.values()} <= {*CODE_LANG_SOURCES, None}

    stats = StageStats.from_dict(json.loads((out / "stats.json").read_text()))
    stats.check()
    assert (stats.input.docs, stats.output.docs, stats.rejected["empty_text"].docs) == (19, 18, 1)
    assert sum(tally.docs for tally in stats.removed.values()) == 0
    assert result.label_mix["category"] == {"code": 12, "multilingual": 5, "english": 1}
    assert result.label_mix["code_lang"] == {"Python": 12}


def test_rerun_is_a_noop_and_new_thresholds_need_a_new_output(mixed_input: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "classified"
    assert main(["classify", str(mixed_input), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[classify] categories: code 12 (66.7%), multilingual 5 (27.8%), english 1 (5.6%)" in printed
    assert "[classify] code languages: Python 12 (66.7%)" in printed
    first = (out / "manifest.json").read_text()
    assert main(["classify", str(mixed_input), "--out", str(out)]) == 0
    assert (out / "manifest.json").read_text() == first
    assert "nothing to do" in capsys.readouterr().err
    assert main(["classify", str(mixed_input), "--out", str(out), "--min-lang-score", "0.9"]) == 2


def test_train_code_model_is_its_own_sub_command(capsys) -> None:  # type: ignore[no-untyped-def]
    command, args = parse(["classify", "train-code-model", "--out", "m.ftz", "--source-root", "a/*=prose"])
    assert command.words == ("classify", "train-code-model")
    assert (args.out, args.source_root) == ("m.ftz", ["a/*=prose"])
    with pytest.raises(SystemExit) as exit_:
        main(["classify", "train-code-model", "--help"])
    assert exit_.value.code == 0
    usage = capsys.readouterr().out
    assert usage.startswith("usage: corpusmill classify train-code-model") and "--source-root GLOB[=LANGUAGE]" in usage
    assert "--lid-model" not in usage and "positional arguments" not in usage


def test_train_code_model_command(tmp_path: Path, stdlib_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    model = tmp_path / "code.ftz"
    argv = [
        "classify",
        "train-code-model",
        "--out",
        str(model),
        "--epoch",
        "5",
        "--source-root",
        f"{stdlib_dir}/*.py",
        "--source-root",
        "/usr/share/perl/*",
        "--source-root",
        "/usr/share/locale/*/LC_MESSAGES/grep.mo=prose",
        "--max-train-files",
        "40",
        "--max-test-files",
        "10",
    ]
    assert main(argv) == 0
    report = json.loads(model.with_suffix(".json").read_text())
    assert {"Python", "Perl", "prose"} <= set(report["train_files"])
    assert report["held_out_accuracy"] >= 0.9
    printed = capsys.readouterr().out
    assert f"[classify] code model {model}: {len(report['train_files'])} labels, held-out accuracy" in printed
    assert f"  {'Python':<20} {report['held_out_accuracy_by_language']['Python']:.3f}" in printed
