"""The group refiner: tells apart the languages of a group that the general identifiers confuse.

Why: lid.176, heliport and CLD3 were trained on web text in which a small language is rare
next to its big neighbour, so they read Asturian as Spanish, Low German as German,
Latin-script Belarusian as Polish, Maithili as Hindi, Crimean Tatar as Turkish and Friulian as
Italian, and split Croatian, Bosnian and Serbian, or Malay and Indonesian, almost at random
(docs/BENCHMARKS.md, "Language ID"). The refiner is a small supervised fastText model over
character 2- to 4-grams, trained on this machine's translated gettext catalogs with its
classes balanced (`lid_refiner_train`), that knows only the members of a few groups. It
runs after the fusion: when a text's answer is a member of a group, the member the refiner
ranks highest becomes the answer, with the fusion's score (the thresholds still decide
``und``). Texts answered outside every group never reach it, so English and most other
languages cost nothing more.

The model and its card (groups, training counts, settings) ship in ``models/``; the card's
groups are the ones its training could support, so a model trained elsewhere brings its own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from corpusmill.curation.classify.fasttext_backend import load_fasttext_model
from corpusmill.curation.errors import MissingFileError

Ranking = list[tuple[str, float]]
"""One text's candidates, best first: (ISO code, probability in [0, 1])."""
LABEL_PREFIX = "__label__"


def packaged_refiner_path() -> Path:
    """The model written by ``corpusmill classify train-lid-refiner`` and shipped in this package."""
    return Path(__file__).parent / "models" / "lid_refiner.ftz"


def refiner_card_path(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".json")


class GroupRefiner:
    """A loaded refiner: its fastText model and the groups it decides within."""

    def __init__(self, model_path: str | Path | None = None, threads: int = 1) -> None:
        self.model_path = Path(model_path) if model_path else packaged_refiner_path()
        card = refiner_card_path(self.model_path)
        if not card.is_file():
            raise MissingFileError(
                f"the refiner's card {card} is missing: train one with `corpusmill classify train-lid-refiner "
                f"--out {self.model_path}`"
            )
        self.groups: list[tuple[str, ...]] = [tuple(group) for group in json.loads(card.read_text())["groups"]]
        self.group_of = {code: group for group in self.groups for code in group}
        self.model = load_fasttext_model(self.model_path)
        self.threads = threads

    def refine(self, rankings: list[Ranking], texts: Sequence[str]) -> list[Ranking]:
        """``rankings`` (of the one-line ``texts``) with each group member's answer re-decided within its group."""
        rows = [
            row for row, ranking in enumerate(rankings) if ranking and texts[row] and ranking[0][0] in self.group_of
        ]
        if not rows:
            return rankings
        labels, probabilities = self.model.predict_batch(
            [texts[row] for row in rows], k=-1, threads=self.threads, on_unicode_error="replace"
        )
        refined = list(rankings)
        for row, row_labels, row_probabilities in zip(rows, labels, probabilities):
            scores = {label.removeprefix(LABEL_PREFIX): float(p) for label, p in zip(row_labels, row_probabilities)}
            answer = refined[row][0][0]
            best = max(self.group_of[answer], key=lambda code: (scores.get(code, 0.0), code == answer))
            if best != answer:
                refined[row] = promote(refined[row], best)
        return refined


def promote(ranking: Ranking, code: str) -> Ranking:
    """``code`` first with the top's probability, the rest after it (a re-decided answer keeps the fused confidence)."""
    return [(code, ranking[0][1])] + [(other, p) for other, p in ranking if other != code]
