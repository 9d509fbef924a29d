"""The content code model: corpus collection, split, training report and prediction."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pyarrow as pa
import pytest

from corpusmill.curation.classify.code_corpus import (
    PROSE_LABEL,
    SourceRoot,
    discover_labelled_locations,
    read_source_text,
    sample_corpus,
    split_of,
)
from corpusmill.curation.classify.code_model import (
    NEWLINE_TOKEN,
    CodeClassifier,
    TrainingSettings,
    packaged_code_model_path,
    prepare_code_texts,
    train_code_model,
)
from corpusmill.curation.errors import ConfigError, MissingFileError

SMALL_ROOTS = (
    SourceRoot(sysconfig.get_paths()["stdlib"]),
    SourceRoot("/usr/include"),
    SourceRoot("/usr/share/perl/*"),
    SourceRoot("/usr/share/vim"),
    SourceRoot("/usr/share/locale/*/LC_MESSAGES/coreutils.mo", language=PROSE_LABEL),
)


@pytest.fixture(scope="module")
def small_corpus() -> dict:
    return sample_corpus(SMALL_ROOTS, {"train": 60, "test": 20})


@pytest.fixture(scope="module")
def small_model(small_corpus: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("code_model") / "code.ftz"
    report = train_code_model(small_corpus, path, TrainingSettings(epoch=10, bucket=50_000, quantize_cutoff=20_000))
    return path, report


def test_corpus_has_real_labelled_files_on_both_sides(small_corpus: dict) -> None:
    assert {"Python", "C", "Perl", "Vim Script", PROSE_LABEL} <= set(small_corpus)
    for label, items in small_corpus.items():
        splits = [file.split for file, _ in items]
        assert splits.count("train") >= 30 and splits.count("test") >= 5, label
        assert all(file.language == label and len(text) >= 200 for file, text in items)
        assert all(split_of(file.location) == file.split for file, _ in items)


def test_split_follows_the_basename_so_copies_never_straddle_it(small_corpus: dict) -> None:
    assert split_of("/usr/lib/python3.11/os.py") == split_of("/opt/python3.8/lib/os.py")
    assert split_of("/x/src.zip!/java.base/java/util/List.java") == split_of("/y/List.java")
    locations = [location for location, _ in discover_labelled_locations(SMALL_ROOTS[:1])]
    test_share = sum(split_of(location) == "test" for location in locations) / len(locations)
    assert 0.15 < test_share < 0.25


def test_catalogs_are_read_as_their_translations() -> None:
    text = read_source_text("/usr/share/locale/fr/LC_MESSAGES/coreutils.mo")
    assert text and "fichier" in text and "\x00" not in text


def test_code_text_preparation() -> None:
    prepared = prepare_code_texts(pa.array(["std::vector<int> v;\n  return v;", None]), 1000)
    assert prepared == [f"std : : vector < int > v ; {NEWLINE_TOKEN} return v ;", ""]


def test_training_reports_held_out_accuracy(small_model: tuple[Path, dict]) -> None:
    path, report = small_model
    assert path.is_file() and report["model_bytes"] == path.stat().st_size
    assert report["held_out_accuracy"] >= 0.9
    assert set(report["test_files"]) == set(report["held_out_accuracy_by_language"])
    assert json.loads(path.with_suffix(".json").read_text())["held_out_accuracy"] == report["held_out_accuracy"]


def test_classifier_names_code_and_leaves_prose_alone(small_model: tuple[Path, dict], small_corpus: dict) -> None:
    path, _ = small_model
    classifier = CodeClassifier(path, min_score=0.5)
    assert classifier.languages() == sorted(set(small_corpus) - {PROSE_LABEL})
    held_out = {
        label: [text for file, text in items if file.split == "test"][:5] for label, items in small_corpus.items()
    }
    for label, texts in held_out.items():
        predictions = classifier.predict(pa.array(texts))
        expected = None if label == PROSE_LABEL else label
        assert sum(language == expected for language in predictions.languages) >= 4, label


def test_empty_text_is_not_code(small_model: tuple[Path, dict]) -> None:
    predictions = CodeClassifier(small_model[0]).predict(pa.array(["", None]))
    assert predictions.languages == [None, None] and list(predictions.scores) == [0.0, 0.0]


def test_missing_model_tells_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="train-code-model"):
        CodeClassifier(tmp_path / "absent.ftz")


def test_training_needs_both_splits(tmp_path: Path, small_corpus: dict) -> None:
    train_only = {label: [(f, t) for f, t in items if f.split == "train"] for label, items in small_corpus.items()}
    with pytest.raises(ConfigError, match="both sides"):
        train_code_model(train_only, tmp_path / "m.ftz")


def test_packaged_model_is_small_and_measured() -> None:
    path = packaged_code_model_path()
    report = json.loads(path.with_suffix(".json").read_text())
    assert path.stat().st_size < 3_000_000 and report["model_bytes"] == path.stat().st_size
    assert report["held_out_accuracy"] >= 0.95
    assert len(CodeClassifier(path).languages()) >= 20
