"""Language labels: one code scheme, near-identical pairs decided, calibrated `und`, and `lang_mix` on real text."""

from __future__ import annotations

import base64
import json

import pyarrow as pa
import pytest

from corpusmill.curation.classify.identifiers import (
    IDENTIFIER_NAMES,
    Lid176Heliport,
    Route,
    fuse,
    promote,
    resolve_macrolanguages,
    split_by_reference,
)
from corpusmill.curation.classify.iso639 import normalize_language_code
from corpusmill.curation.classify.labels import UNDETERMINED
from corpusmill.curation.classify.langid import LanguageIdentifier, letter_shares, prepare_texts
from corpusmill.curation.classify.thresholds import (
    THRESHOLD_GRID,
    Thresholds,
    fit_routes,
    fit_thresholds,
    macro_f1,
    shipped_thresholds,
    thresholds_path,
)


@pytest.mark.parametrize(
    ("label", "code"),
    [
        ("__label__de", "de"),  # lid.176
        ("deu", "de"),  # heliport, ISO 639-3
        ("deu_Latn", "de"),  # GlotLID / NLLB
        ("ger", "de"),  # ISO 639-2/B
        ("pt_BR", "pt"),  # locales, as the evaluation set labels documents
        ("sr@latin", "sr"),
        ("zh_TW", "zh"),
        ("cmn", "zh"),  # Mandarin, individual language of the macrolanguage zh
        ("zh-Latn", "zh"),  # CLD3's romanised Chinese
        ("yue", "yue"),  # Cantonese stays apart
        ("no", "nb"),  # Norwegian is Bokmal ...
        ("nob", "nb"),
        ("nb_NO", "nb"),
        ("nno", "nn"),  # ... and Nynorsk keeps its own code
        ("iw", "he"),  # CLD3's retired code for Hebrew
        ("fil", "tl"),
        ("kmr", "ku"),
        ("ckb", "ckb"),  # no ISO 639-1 code: 639-3
        ("hbs", "sh"),  # Serbo-Croatian, before an identifier resolves it
        ("ind", "id"),
        ("zsm", "ms"),
    ],
)
def test_every_scheme_lands_on_one_code(label: str, code: str) -> None:
    assert normalize_language_code(label) == code


def test_serbo_croatian_is_resolved_by_the_ranking_else_by_script() -> None:
    assert resolve_macrolanguages([("sh", 0.5), ("bs", 0.3), ("hr", 0.1)], "Ovo je tekst") == [("bs", 0.8), ("hr", 0.1)]
    assert resolve_macrolanguages([("sh", 0.9)], "Ово је текст") == [("sr", 0.9)]
    assert resolve_macrolanguages([("sh", 0.9)], "Ovo je tekst") == [("hr", 0.9)]
    assert resolve_macrolanguages([("de", 0.9)], "text") == [("de", 0.9)]


def test_heliports_merged_labels_are_split_as_lid176_ranks_them() -> None:
    split = dict(split_by_reference([("ms", 0.8), ("en", 0.2)], [("id", 0.6), ("ms", 0.2)], "Berkas tidak ada"))
    assert split == pytest.approx({"id": 0.6, "ms": 0.2, "en": 0.2})
    assert dict(split_by_reference([("sh", 1.0)], [("de", 0.9)], "Датотека")) == {"sr": 1.0}


@pytest.fixture(scope="module")
def identifier() -> LanguageIdentifier:
    return LanguageIdentifier()


def test_default_identifier_labels_real_translations(identifier: LanguageIdentifier, catalog_document) -> None:
    """The default identifier on real catalog text, including the pairs heliport alone merges."""
    locales = {"de": "de", "fr": "fr", "ja": "ja", "zh_CN": "zh", "ru": "ru", "sr": "sr", "id": "id", "nb": "nb"}
    texts = [catalog_document(locale, min_chars=600) for locale in locales]
    predictions = identifier.predict(pa.array(texts))
    assert predictions.langs == list(locales.values())
    assert "sh" not in predictions.langs and all(mix is None for mix in predictions.mixes)


def test_heliport_alone_never_writes_serbo_croatian(catalog_document) -> None:
    heliport = LanguageIdentifier("heliport")
    labels = heliport.predict(pa.array([catalog_document("hr", min_chars=600), catalog_document("sr", min_chars=600)]))
    assert labels.langs[0] in ("hr", "bs", "sr") and labels.langs[1] == "sr"


def test_mostly_non_linguistic_text_is_und(identifier: LanguageIdentifier, numpy_table_text, stdlib_dir) -> None:
    encoded = base64.b64encode((stdlib_dir / "shutil.py").read_bytes()[:3000]).decode()
    markup = '<table><tr><td align="right">1,024</td><td>0x3f</td><td>-7.5e-3</td></tr></table>\n' * 12
    shares = letter_shares(prepare_texts(pa.array([numpy_table_text, markup, encoded]), 3000))
    assert all(shares < 0.5)  # base64 is mostly letters, but in runs no language has
    predictions = identifier.predict(pa.array([numpy_table_text, markup, encoded, ""]))
    assert predictions.langs == [UNDETERMINED] * 4


def test_lang_mix_of_a_real_mixed_document(identifier: LanguageIdentifier, catalog_document, first_match) -> None:
    """Two German paragraphs and one English: `lang` is the majority, `lang_mix` has both with their byte shares."""
    german = [catalog_document("de", min_chars=500, skip=skip) for skip in (0, 40)]
    english = first_match("/usr/share/common-licenses/Apache-2.0").read_text()[2000:2400]
    document = f"{german[0]}\n\n{english}\n\n{german[1]}"
    single = catalog_document("de", min_chars=500)
    predictions = identifier.predict(pa.array([document, single]))
    mix = predictions.mixes[0]
    assert predictions.langs[0] == "de" and [entry["lang"] for entry in mix] == ["de", "en"]
    german_bytes = sum(len(" ".join(p.split()).encode()) for p in german)
    english_bytes = len(" ".join(english.split()).encode())
    assert mix[0]["share"] == pytest.approx(german_bytes / (german_bytes + english_bytes), abs=1e-3)
    assert sum(entry["share"] for entry in mix) == pytest.approx(1.0)
    assert predictions.mixes[1] is None and predictions.langs[1] == "de"


def test_majority_language_wins_over_a_bigger_table_but_a_captioned_table_stays_und(
    identifier: LanguageIdentifier, catalog_document, numpy_table_text
) -> None:
    """Like ``ascii(7)``: prose paragraphs around a larger table are in their language; a caption alone is not."""
    prose = [catalog_document("fr", min_chars=450, skip=skip) for skip in (0, 30)]
    table = "\n\n".join(numpy_table_text[i : i + 600] for i in range(0, 1800, 600))
    documented = f"{prose[0]}\n\n{table}\n\n{prose[1]}"
    captioned = f"{prose[0][:120]}\n\n{table}\n\n{numpy_table_text[:600]}"
    predictions = identifier.predict(pa.array([documented, captioned]))
    assert predictions.mixes[0][0]["lang"] == UNDETERMINED and predictions.langs[0] == "fr"
    assert predictions.mixes[1][0]["lang"] == UNDETERMINED and predictions.langs[1] == UNDETERMINED


def test_routes_are_kept_only_where_they_raise_macro_f1() -> None:
    # Xhosa is fused as Zulu, CLD3 tells them apart; heliport says "ms" for Indonesian and Malay alike.
    gold = ["xh"] * 6 + ["zu"] * 4 + ["id"] * 5 + ["ms"] * 3
    fused = ["zu"] * 10 + ["id"] * 8
    others = {"cld3": ["xh"] * 6 + ["zu"] * 4 + ["id"] * 8, "heliport": ["zu"] * 10 + ["ms"] * 8}
    assert fit_routes(gold, fused, others) == [Route("cld3", "zu", "xh")]


def test_english_answers_are_never_routed_to_cld3_however_much_it_would_help() -> None:
    # Vietnamese catalog text fused as English, CLD3 right every time: routing it would ask CLD3 about all English.
    gold = ["vi"] * 8 + ["en"] * 8
    fused = ["en"] * 16
    others = {"cld3": ["vi"] * 8 + ["en"] * 8, "heliport": ["vi"] * 8 + ["en"] * 8}
    assert fit_routes(gold, fused, others) == [Route("heliport", "en", "vi")]
    assert fit_routes(gold, fused, {"cld3": others["cld3"]}) == []


def test_xhosa_is_routed_to_cld3_which_tells_it_from_zulu(identifier: LanguageIdentifier, first_match) -> None:
    """heliport calls Xhosa Zulu and lid.176 knows neither; the shipped route asks CLD3."""
    from corpusmill.curation.classify.code_corpus import read_source_text

    lines = read_source_text(str(first_match("/usr/share/locale/xh/LC_MESSAGES/glib20.mo"))).splitlines()
    document = "\n".join(line for line in lines if len(line) > 30)[:800]
    assert Route("cld3", "zu", "xh") in identifier.identifier.routes
    assert identifier.predict(pa.array([document])).langs == ["xh"]
    unrouted = identifier.identifier.with_fit([], None)
    assert unrouted.rank(prepare_texts(pa.array([document]), 3000))[0][0][0] == "zu"


def test_a_language_lid176_cannot_name_gets_heliports_whole_probability(identifier: LanguageIdentifier) -> None:
    """Faroese is not among lid.176's labels: its share is heliport's alone, not 0.4 of it against lid.176's zero."""
    fusion = identifier.identifier
    assert isinstance(fusion, Lid176Heliport)
    known = fusion.lid176.languages
    assert {"is", "de", "nb"} <= known and not {"fo", "gsw"} & known
    fused = dict(fuse([("is", 0.7), ("nb", 0.2)], [("fo", 0.8), ("is", 0.2)], 0.6, "Sýn hesa hjálp", known))
    assert fused == pytest.approx({"fo": 0.8, "is": 0.6 * 0.7 + 0.4 * 0.2, "nb": 0.6 * 0.2})
    # A regional variety with no ISO 639-1 code (Swiss German) keeps heliport's share: lid.176's silence counts.
    fused = dict(fuse([("de", 0.7)], [("gsw", 0.9), ("de", 0.1)], 0.6, "Datei nicht gefunden", known))
    assert fused == pytest.approx({"de": 0.6 * 0.7 + 0.4 * 0.1, "gsw": 0.4 * 0.9})


def test_faroese_that_lid176_reads_as_icelandic_is_faroese(identifier: LanguageIdentifier, first_match) -> None:
    """Real Faroese (shared-mime-info's catalog): lid.176 says Icelandic at 0.7, heliport Faroese."""
    from corpusmill.curation.classify.code_corpus import read_source_text

    lines = read_source_text(str(first_match("/usr/share/locale/fo/LC_MESSAGES/shared-mime-info.mo"))).splitlines()
    document = "\n".join(line for line in lines if len(line) > 30)[:800]
    prepared = prepare_texts(pa.array([document]), 3000)
    assert identifier.identifier.lid176.rank(prepared)[0][0][0] == "is"
    assert identifier.predict(pa.array([document])).langs == ["fo"]


def test_a_route_promotes_the_other_identifiers_answer_with_the_fused_score(identifier: LanguageIdentifier) -> None:
    assert promote([("zu", 0.7), ("en", 0.2), ("xh", 0.1)], "xh") == [("xh", 0.7), ("zu", 0.7), ("en", 0.2)]
    fusion = identifier.identifier
    assert isinstance(fusion, Lid176Heliport)
    routed = fusion.with_fit([Route("heliport", "de", "nl")], None)
    text = "Het bestand kon niet worden geopend omdat de map niet bestaat"
    assert routed.route([("de", 0.6)], [("nl", 0.9)], text)[0] == ("nl", 0.6)
    assert routed.route([("fr", 0.6)], [("nl", 0.9)], text)[0] == ("fr", 0.6)


def test_fitted_thresholds_make_unsure_wrong_answers_und_and_keep_the_right_ones() -> None:
    # "en" is said for two German documents and a table, all with low scores, while German itself is
    # right at low scores: one global threshold would cost German; per language, only "en" moves.
    gold = ["en", "en", "en", "de", "de", "de", "de", "und"] * 5
    codes = ["en", "en", "en", "de", "de", "en", "en", "en"] * 5
    scores = [0.9, 0.8, 0.7, 0.2, 0.15, 0.3, 0.25, 0.4] * 5
    fitted = fit_thresholds(gold, codes, scores)
    assert fitted == Thresholds(0.0, {"en": 0.45})
    labels = fitted.apply(codes, scores)
    assert labels[:8] == ["en", "en", "en", "de", "de", "und", "und", "und"]
    assert macro_f1(gold, labels)[0] == pytest.approx((1.0 + 2 * 10 / 30) / 2)
    assert macro_f1(gold, codes)[0] == pytest.approx((2 * 15 / 45 + 2 * 10 / 30) / 2)


def test_rare_predictions_keep_the_default_and_ties_keep_the_lower_threshold() -> None:
    assert fit_thresholds(["de"] * 12, ["de"] * 12, [0.99] * 12) == Thresholds(0.0, {})
    gold, codes = ["de"] * 12 + ["de", "de", "fr"], ["de"] * 12 + ["fr", "fr", "fr"]
    rare = fit_thresholds(gold, codes, [0.99] * 12 + [0.1, 0.1, 0.5])
    assert rare.default == pytest.approx(0.15) and rare.languages == {"de": 0.0}  # fr: 3 predictions, default
    # "ext" is no document's language: whatever its threshold, macro-F1 is the same, so it keeps the default
    unknown = fit_thresholds(["ast"] * 20 + ["es"] * 20, ["ext"] * 12 + ["es"] * 28, [0.1] * 12 + [0.9] * 28)
    assert "ext" not in unknown.languages and unknown.minimum("ext") == unknown.default


def test_shipped_thresholds_cover_every_identifier_that_is_fitted() -> None:
    record = json.loads(thresholds_path().read_text())
    assert record["format"] == "corpusmill-lid-thresholds" and record["evaluation_set"]["sha256"]
    for name in ("lid176", "heliport", "cld3", "lid176+heliport"):
        fitted = shipped_thresholds(name)
        assert fitted is not None and fitted.languages, name
        assert {fitted.default, *fitted.languages.values()} <= set(THRESHOLD_GRID)
    assert set(record["identifiers"]) <= set(IDENTIFIER_NAMES)
