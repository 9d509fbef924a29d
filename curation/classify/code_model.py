"""Content classifier for documents without a path: is it code, and in which language?

A fastText supervised model over code-aware tokens. Text preparation (training and prediction
alike): documents up to ``max_chars`` characters are read whole; longer ones are read as their
first ``max_chars / 2`` characters plus ``max_chars / 2`` from the middle, because files often
open with a license or a docstring that says nothing about the language. Then every ASCII
punctuation character becomes its own token (``#include``, ``::``, ``=>``, ``{`` carry most
of the signal), and so does every CJK character (CJK prose has no spaces to split words on);
each newline becomes the token ``␤`` so line structure survives fastText's one-line input;
whitespace runs collapse.
The model predicts a Linguist language or ``prose``; ``prose`` and low scores mean "not code".
"""

import json
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpusmill.curation.classify.code_corpus import PROSE_LABEL, SourceFile
from corpusmill.curation.classify.fasttext_backend import import_fasttext, load_fasttext_model
from corpusmill.curation.errors import ConfigError, MissingFileError

DEFAULT_CODE_MAX_CHARS = 2000
DEFAULT_MIN_CODE_SCORE = 0.9
NEWLINE_TOKEN = "\u2424"
PUNCTUATION_OR_CJK = r"([[:punct:]]|\p{Han}|\p{Hiragana}|\p{Katakana}|\p{Hangul})"
LABEL_PREFIX = "__label__"


def packaged_code_model_path() -> Path:
    """The model trained by ``corpusmill classify train-code-model`` and shipped in this package."""
    return Path(__file__).parent / "models" / "code_lang.ftz"


def code_views(texts: pa.ChunkedArray | pa.Array, max_chars: int) -> pa.Array:
    """What the model reads of each document: all of it, or its start plus its middle."""
    texts = pc.fill_null(texts, "")
    views = pc.utf8_slice_codeunits(texts, 0, max_chars).to_pylist()
    half = max_chars // 2
    for row in np.flatnonzero(pc.greater(pc.utf8_length(texts), max_chars).to_numpy(zero_copy_only=False)):
        text = texts[int(row)].as_py()
        middle = len(text) // 2
        views[row] = text[:half] + "\n" + text[middle : middle + half]
    return pa.array(views, pa.large_string())


def prepare_code_texts(texts: pa.ChunkedArray | pa.Array, max_chars: int) -> list[str]:
    """Turn documents into the one-line token streams the code model reads."""
    capped = code_views(texts, max_chars)
    spaced = pc.replace_substring_regex(capped, PUNCTUATION_OR_CJK, r" \1 ")
    lines = pc.replace_substring(spaced, "\n", f" {NEWLINE_TOKEN} ")
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(lines, r"[\s\x00]+", " ")).to_pylist()


def language_to_label(language: str) -> str:
    """fastText labels cannot hold spaces: ``Vim Script`` -> ``__label__Vim_Script``."""
    return LABEL_PREFIX + language.replace(" ", "_")


def label_to_language(label: str) -> str:
    return label.removeprefix(LABEL_PREFIX).replace("_", " ")


@dataclass(frozen=True)
class CodePredictions:
    """Per document: Linguist language or None (prose / not sure), and the model's score."""

    languages: list[str | None]
    scores: np.ndarray


class CodeClassifier:
    """A loaded content model plus the score a code prediction needs to count."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        min_score: float = DEFAULT_MIN_CODE_SCORE,
        max_chars: int = DEFAULT_CODE_MAX_CHARS,
        threads: int = 1,
    ) -> None:
        self.model_path = Path(model_path) if model_path else packaged_code_model_path()
        if not self.model_path.is_file():
            raise MissingFileError(
                f"code model {self.model_path} is missing: run `corpusmill classify train-code-model "
                f"--out {self.model_path}` or pass --code-model PATH"
            )
        self.model = load_fasttext_model(self.model_path)
        self.min_score = min_score
        self.max_chars = max_chars
        self.threads = threads

    def languages(self) -> list[str]:
        """The programming languages this model can name (its labels other than prose)."""
        return sorted(
            label_to_language(label) for label in self.model.get_labels() if label_to_language(label) != PROSE_LABEL
        )

    def predict(self, texts: pa.ChunkedArray | pa.Array) -> CodePredictions:
        prepared = prepare_code_texts(texts, self.max_chars)
        labels, probabilities = self.model.predict_batch(prepared, k=1, threads=self.threads)
        scores = np.array(
            [min(float(p[0]), 1.0) if len(p) and text else 0.0 for p, text in zip(probabilities, prepared)],
            dtype=np.float32,
        )
        languages = [_code_language(label[0], score, self.min_score) for label, score in zip(labels, scores)]
        return CodePredictions(languages=languages, scores=scores)


def _code_language(label: str, score: float, min_score: float) -> str | None:
    language = label_to_language(label)
    if language == PROSE_LABEL or score < min_score or score == 0.0:
        return None
    return language


@dataclass(frozen=True)
class TrainingSettings:
    """fastText hyper-parameters; ``thread=1`` makes training byte-for-byte reproducible."""

    max_chars: int = DEFAULT_CODE_MAX_CHARS
    epoch: int = 15
    lr: float = 0.5
    dim: int = 32
    word_ngrams: int = 2
    bucket: int = 200_000
    quantize_cutoff: int = 60_000
    extra_windows: int = 2
    prose_extra_windows: int = 8
    min_window_chars: int = 100
    seed: int = 0


def train_code_model(
    corpus: dict[str, list[tuple[SourceFile, str]]],
    out_path: Path,
    settings: TrainingSettings | None = None,
) -> dict:
    """Train on the corpus's train split, measure on its test split, save model + report JSON."""
    settings = settings or TrainingSettings()
    fasttext_new = import_fasttext()
    train_items = [(file.language, text) for items in corpus.values() for file, text in items if file.split == "train"]
    test_items = [(file.language, text) for items in corpus.values() for file, text in items if file.split == "test"]
    if not train_items or not test_items:
        raise ConfigError("the code corpus needs files on both sides of the train/test split; add source roots")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        train_file = Path(scratch) / "train.txt"
        _write_training_lines(_training_windows(train_items, settings), settings.max_chars, train_file)
        model = fasttext_new.train_supervised(
            input=str(train_file),
            epoch=settings.epoch,
            lr=settings.lr,
            dim=settings.dim,
            wordNgrams=settings.word_ngrams,
            bucket=settings.bucket,
            thread=1,
            seed=settings.seed,
            verbose=0,
        )
        model.quantize(input=str(train_file), retrain=True, cutoff=settings.quantize_cutoff, qnorm=True, thread=1)
    model.save_model(str(out_path))
    report = _evaluate(model, test_items, settings.max_chars)
    report.update(
        model_path=str(out_path),
        model_bytes=out_path.stat().st_size,
        settings=asdict(settings),
        train_files=dict(sorted(Counter(language for language, _ in train_items).items())),
        test_files=dict(sorted(Counter(language for language, _ in test_items).items())),
    )
    out_path.with_suffix(".json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def _training_windows(items: list[tuple[str, str]], settings: TrainingSettings) -> list[tuple[str, str]]:
    """Each whole file (read as prediction reads it) plus random shorter windows starting at a line.

    The extra windows teach the model snippets and mid-file code, not just license headers.
    Prose gets more of them: it is the most varied class, and code files carry prose of their
    own (POD, CMake's reST blocks, docstrings) that would otherwise pull prose towards code.
    """
    rng = np.random.default_rng(settings.seed)
    windows = []
    for language, text in items:
        windows.append((language, text))
        line_starts = [0] + [i + 1 for i, char in enumerate(text) if char == "\n"]
        for _ in range(settings.prose_extra_windows if language == PROSE_LABEL else settings.extra_windows):
            start = line_starts[rng.integers(len(line_starts))]
            length = int(rng.integers(settings.min_window_chars, settings.max_chars + 1))
            window = text[start : start + length]
            if len(window.strip()) >= settings.min_window_chars // 2:
                windows.append((language, window))
    return windows


def _write_training_lines(items: list[tuple[str, str]], max_chars: int, train_file: Path) -> None:
    labels = [language_to_label(language) for language, _ in items]
    prepared = prepare_code_texts(pa.array([text for _, text in items], pa.large_string()), max_chars)
    order = np.random.default_rng(0).permutation(len(items))
    with train_file.open("w", encoding="utf-8") as handle:
        for index in order:
            handle.write(f"{labels[index]} {prepared[index]}\n")


def _evaluate(model, test_items: list[tuple[str, str]], max_chars: int) -> dict:
    """Held-out accuracy of the raw top label, overall and per language."""
    prepared = prepare_code_texts(pa.array([text for _, text in test_items], pa.large_string()), max_chars)
    predicted, _ = model.predict_batch(prepared, k=1, threads=1)
    hits: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for (language, _), labels in zip(test_items, predicted):
        totals[language] += 1
        hits[language] += label_to_language(labels[0]) == language
    return {
        "held_out_accuracy": sum(hits.values()) / len(test_items),
        "held_out_accuracy_by_language": {language: hits[language] / totals[language] for language in sorted(totals)},
    }
