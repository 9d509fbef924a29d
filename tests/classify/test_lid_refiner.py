"""The group refiner: re-decides confusable languages on real catalog text, and trains from catalogs."""

from __future__ import annotations

import json
import struct
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from corpusmill.curation.classify.gettext_catalogs import translated_messages, translated_share
from corpusmill.curation.classify.langid import LanguageIdentifier
from corpusmill.curation.classify.lid_refiner import GroupRefiner, packaged_refiner_path
from corpusmill.curation.classify.lid_refiner_train import (
    Chunk,
    RefinerSettings,
    balanced,
    catalog_chunks,
    train_refiner,
    trainable_groups,
)
from corpusmill.pipelines.cli import main

# Real translations of the same GTK messages (gtk30.mo of Debian 12's catalogs).
ASTURIAN = (
    "Alcontróse una etiqueta anónima y les etiquetes nun se puen criar. "
    "Calque nel cuentagotes, lluéu calque nun color el cualesquier parte de la pantalla pa escoyer esi color. "
    "Necesítase autenticación pa obtener los atributos d'una imprentadora"
)
SPANISH = (
    "Se encontró una etiqueta anónima y las etiquetas no se pueden crear. "
    "Crea un widget en el que los contenidos de la celda se pueden editar. "
    "Expande o contrae la celda en la vista de árbol que contiene la celda"
)
BELARUSIAN_LATIN = (
    "Znojdzieny ananimny značnik i značniki nia mohuć być stvoranyja. "
    "Klikni hetuju pipietku, a potym adzin z punktaŭ vyjavy, kab uziać ź jaho koler. "
    "Abiary žadany koler z vonkavaha kołca, trochkutnikam unutry abiary jaskravaść hetaha koleru."
)
POLISH = (
    "Odnaleziono anonimowy znacznik i znaczniki nie mogą zostać utworzone. "
    "Proszę nacisnąć zakraplacz, a następnie dowolny punkt obrazu, aby pobrać z niego kolor. "
    "Zmiany są uwzględniane od razu i globalnie, dla całego programu."
)
MALAY = (
    "Kembang atau kecutkan baris dalam pandangan pepohon yang mengandungi sel ini. "
    "Pengesahihan diperlukan untuk mendapatkan atribut satu pencetak. "
    "Perubahan dilaksana serta-merta dan secara sejagat, untuk keseluruhan aplikasi."
)
INDONESIAN = (
    "Kembangkan atau kuncupkan baris dalam tilikan pohon yang memuat sel ini. "
    "Perlu autentikasi untuk memperoleh atribut dari suatu pencetak. "
    "Tidak dapat mengganti folder karena tidak berada pada komputer lokal."
)


@pytest.fixture(scope="module")
def refiner() -> GroupRefiner:
    return GroupRefiner()


@pytest.mark.parametrize(
    ("text", "answer", "expected"),
    [
        (ASTURIAN, "es", "ast"),
        (SPANISH, "es", "es"),
        (BELARUSIAN_LATIN, "pl", "be"),
        (POLISH, "pl", "pl"),
        (MALAY, "id", "ms"),
        (INDONESIAN, "ms", "id"),
    ],
)
def test_the_packaged_refiner_redecides_within_the_group(
    refiner: GroupRefiner, text: str, answer: str, expected: str
) -> None:
    (refined,) = refiner.refine([[(answer, 0.93), ("en", 0.01)]], [text])
    assert refined[0] == (expected, 0.93)  # the answer changes, the fusion's score stays
    assert {code for code, _ in refined} == {expected, answer, "en"}


def test_answers_outside_every_group_and_empty_texts_are_not_asked(refiner: GroupRefiner) -> None:
    rankings = [[("en", 0.6), ("es", 0.3)], [], [("es", 0.9)]]
    assert refiner.refine(rankings, [ASTURIAN, ASTURIAN, ""]) == rankings


def test_the_packaged_card_lists_only_groups_its_training_supports() -> None:
    card = json.loads(packaged_refiner_path().with_suffix(".json").read_text())
    for group in card["groups"]:
        assert len(group) >= 2
        assert all(card["chunks"][code] >= card["settings"]["min_chunks"] for code in group)
    assert "en" not in {code for group in card["groups"] for code in group}


def test_classify_labels_asturian_and_latin_belarusian_and_keeps_their_neighbours() -> None:
    default = LanguageIdentifier()
    without = LanguageIdentifier(refiner="none")
    texts = pa.array([ASTURIAN, SPANISH, BELARUSIAN_LATIN, POLISH])
    assert default.predict(texts).langs == ["ast", "es", "be", "pl"]
    assert without.predict(texts).langs[2] == "pl"  # what the general models say of Latin-script Belarusian


def test_trainable_groups_leave_out_languages_too_rare_to_learn() -> None:
    counts = Counter({"es": 900, "ast": 120, "gl": 8, "hr": 300, "bs": 3, "sr": 2})
    groups = trainable_groups(counts, min_chunks=40)
    assert ("es", "ast") in groups
    assert not any("hr" in group for group in groups)  # hr alone is no group
    assert all(code not in {"gl", "bs", "sr"} for group in groups for code in group)


def test_balanced_caps_big_languages_and_repeats_small_ones() -> None:
    chunks = [Chunk("es", f"{i}.mo", f"es {i}") for i in range(50)] + [
        Chunk("ast", "a.mo", f"ast {i}") for i in range(4)
    ]
    picked = Counter(chunk.label for chunk in balanced(chunks, RefinerSettings(max_chunks=20, max_repeat=3)))
    assert picked == {"es": 20, "ast": 12}


def test_translated_share_skips_messages_that_copy_their_english_original() -> None:
    assert translated_share("--verbose print more", "--verbose print more") == 0.0
    assert translated_share("Create a folder", "Crear una carpeta") == 1.0


def write_mo(path: Path, messages: dict[str, str]) -> None:
    """A GNU .mo catalog (UTF-8), as msgfmt writes it: header, sorted originals, their translations."""
    entries = {"": "Content-Type: text/plain; charset=UTF-8\n", **messages}
    originals = sorted(entries)
    keys = [key.encode() for key in originals]
    values = [entries[key].encode() for key in originals]
    count = len(keys)
    start = 7 * 4 + 16 * count
    blob, key_table, value_table = b"", [], []
    for data, table in [*[(k, key_table) for k in keys], *[(v, value_table) for v in values]]:
        table.append((len(data), start + len(blob)))
        blob += data + b"\0"
    header = struct.pack("<7I", 0x950412DE, 0, count, 28, 28 + 8 * count, 0, 0)
    tables = b"".join(struct.pack("<2I", *entry) for entry in key_table + value_table)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + tables + blob)


def catalog_tree(root: Path) -> Path:
    for locale, text in (("ast", ASTURIAN), ("es", SPANISH), ("es_MX", SPANISH.upper())):
        sentences = [s.strip() for s in text.split(". ") if s.strip()] * 2  # 2 x 3 messages: one chunk of 250+
        write_mo(root / locale / "LC_MESSAGES" / "gtk30.mo", {f"English {i}": s for i, s in enumerate(sentences)})
    return root


def test_train_refiner_on_a_catalog_tree(tmp_path: Path) -> None:
    root = catalog_tree(tmp_path / "locale")
    assert len(list(translated_messages(root / "ast" / "LC_MESSAGES" / "gtk30.mo"))) == 6
    chunks = catalog_chunks(root, {"es", "ast", "hr"})
    assert Counter(chunk.label for chunk in chunks) == {"es": 2, "ast": 1}  # es_MX joins es
    out = tmp_path / "refiner.ftz"
    small = RefinerSettings(min_chunks=1, epoch=2, dim=8, bucket=2_000, quantize_cutoff=500)
    card = train_refiner(chunks, out, small)
    assert card["groups"] == [["es", "ast"]] and card["chunks"] == {"ast": 1, "es": 2}
    assert json.loads(out.with_suffix(".json").read_text()) == card
    assert GroupRefiner(out).group_of == {"es": ("es", "ast"), "ast": ("es", "ast")}


def test_train_lid_refiner_refuses_a_tree_without_two_languages_of_a_group(tmp_path: Path, capsys) -> None:
    root = catalog_tree(tmp_path / "locale")
    out = tmp_path / "refiner.ftz"
    args = ["classify", "train-lid-refiner", "--out", str(out), "--locale-root", str(root), "--min-chunks", "1"]
    assert main([*args, "--exclude-catalog", "gtk30.mo"]) == 2
    assert "no refiner group has two languages with 1+ chunks" in capsys.readouterr().err
    assert not out.exists()
