"""ISO 639 code normalisation: the stage promises ISO 639-1 where one exists, else ISO 639-3.

Language-ID models label in different schemes (lid.176: mostly 639-1; GlotLID / NLLB:
``eng_Latn``), so every label goes through `normalize_language_code` before it is written.
The tables were generated from Debian's iso-codes 4.15 (`iso_639-3.json`, `iso_639-2.json`).
"""

import re
from functools import cache

ISO_639_3_TO_1: dict[str, str] = {
    "aar": "aa",
    "abk": "ab",
    "afr": "af",
    "aka": "ak",
    "amh": "am",
    "ara": "ar",
    "arg": "an",
    "asm": "as",
    "ava": "av",
    "ave": "ae",
    "aym": "ay",
    "aze": "az",
    "bak": "ba",
    "bam": "bm",
    "bel": "be",
    "ben": "bn",
    "bis": "bi",
    "bod": "bo",
    "bos": "bs",
    "bre": "br",
    "bul": "bg",
    "cat": "ca",
    "ces": "cs",
    "cha": "ch",
    "che": "ce",
    "chu": "cu",
    "chv": "cv",
    "cor": "kw",
    "cos": "co",
    "cre": "cr",
    "cym": "cy",
    "dan": "da",
    "deu": "de",
    "div": "dv",
    "dzo": "dz",
    "ell": "el",
    "eng": "en",
    "epo": "eo",
    "est": "et",
    "eus": "eu",
    "ewe": "ee",
    "fao": "fo",
    "fas": "fa",
    "fij": "fj",
    "fin": "fi",
    "fra": "fr",
    "fry": "fy",
    "ful": "ff",
    "gla": "gd",
    "gle": "ga",
    "glg": "gl",
    "glv": "gv",
    "grn": "gn",
    "guj": "gu",
    "hat": "ht",
    "hau": "ha",
    "hbs": "sh",
    "heb": "he",
    "her": "hz",
    "hin": "hi",
    "hmo": "ho",
    "hrv": "hr",
    "hun": "hu",
    "hye": "hy",
    "ibo": "ig",
    "ido": "io",
    "iii": "ii",
    "iku": "iu",
    "ile": "ie",
    "ina": "ia",
    "ind": "id",
    "ipk": "ik",
    "isl": "is",
    "ita": "it",
    "jav": "jv",
    "jpn": "ja",
    "kal": "kl",
    "kan": "kn",
    "kas": "ks",
    "kat": "ka",
    "kau": "kr",
    "kaz": "kk",
    "khm": "km",
    "kik": "ki",
    "kin": "rw",
    "kir": "ky",
    "kom": "kv",
    "kon": "kg",
    "kor": "ko",
    "kua": "kj",
    "kur": "ku",
    "lao": "lo",
    "lat": "la",
    "lav": "lv",
    "lim": "li",
    "lin": "ln",
    "lit": "lt",
    "ltz": "lb",
    "lub": "lu",
    "lug": "lg",
    "mah": "mh",
    "mal": "ml",
    "mar": "mr",
    "mkd": "mk",
    "mlg": "mg",
    "mlt": "mt",
    "mon": "mn",
    "mri": "mi",
    "msa": "ms",
    "mya": "my",
    "nau": "na",
    "nav": "nv",
    "nbl": "nr",
    "nde": "nd",
    "ndo": "ng",
    "nep": "ne",
    "nld": "nl",
    "nno": "nn",
    "nob": "nb",
    "nor": "no",
    "nya": "ny",
    "oci": "oc",
    "oji": "oj",
    "ori": "or",
    "orm": "om",
    "oss": "os",
    "pan": "pa",
    "pli": "pi",
    "pol": "pl",
    "por": "pt",
    "pus": "ps",
    "que": "qu",
    "roh": "rm",
    "ron": "ro",
    "run": "rn",
    "rus": "ru",
    "sag": "sg",
    "san": "sa",
    "sin": "si",
    "slk": "sk",
    "slv": "sl",
    "sme": "se",
    "smo": "sm",
    "sna": "sn",
    "snd": "sd",
    "som": "so",
    "sot": "st",
    "spa": "es",
    "sqi": "sq",
    "srd": "sc",
    "srp": "sr",
    "ssw": "ss",
    "sun": "su",
    "swa": "sw",
    "swe": "sv",
    "tah": "ty",
    "tam": "ta",
    "tat": "tt",
    "tel": "te",
    "tgk": "tg",
    "tgl": "tl",
    "tha": "th",
    "tir": "ti",
    "ton": "to",
    "tsn": "tn",
    "tso": "ts",
    "tuk": "tk",
    "tur": "tr",
    "twi": "tw",
    "uig": "ug",
    "ukr": "uk",
    "urd": "ur",
    "uzb": "uz",
    "ven": "ve",
    "vie": "vi",
    "vol": "vo",
    "wln": "wa",
    "wol": "wo",
    "xho": "xh",
    "yid": "yi",
    "yor": "yo",
    "zha": "za",
    "zho": "zh",
    "zul": "zu",
}
"""Every ISO 639-3 code that has an ISO 639-1 equivalent."""

ISO_639_2B_TO_1: dict[str, str] = {
    "alb": "sq",
    "arm": "hy",
    "baq": "eu",
    "bur": "my",
    "chi": "zh",
    "cze": "cs",
    "dut": "nl",
    "fre": "fr",
    "geo": "ka",
    "ger": "de",
    "gre": "el",
    "ice": "is",
    "mac": "mk",
    "mao": "mi",
    "may": "ms",
    "per": "fa",
    "rum": "ro",
    "slo": "sk",
    "tib": "bo",
    "wel": "cy",
}
"""ISO 639-2 bibliographic codes (``ger``, ``fre``, ...) that differ from the 639-3 code."""

INDIVIDUAL_TO_MACRO_1: dict[str, str] = {
    "arb": "ar",
    "cmn": "zh",
    "pes": "fa",
    "prs": "fa",
    "zsm": "ms",
    "ekk": "et",
    "lvs": "lv",
    "npi": "ne",
    "swh": "sw",
    "uzn": "uz",
    "azj": "az",
    "khk": "mn",
    "plt": "mg",
    "ory": "or",
    "gaz": "om",
    "ydd": "yi",
    "quy": "qu",
    "pbt": "ps",
    "knc": "kr",
}
"""Individual languages that language-ID models emit in place of their macrolanguage.

``als`` is left out on purpose: lid.176 uses it for Alemannic, GlotLID for Tosk Albanian.
"""


RETIRED_TO_CURRENT: dict[str, str] = {"iw": "he", "in": "id", "ji": "yi", "jw": "jv", "mo": "ro"}
"""Withdrawn ISO 639-1 codes that models still emit (CLD3 says ``iw`` for Hebrew)."""

MERGED_LANGUAGES: dict[str, str] = {
    "no": "nb",
    "fil": "tl",
    "kmr": "ku",
}
"""Labels that name the same written language as another code, folded into that code.

* ``no`` (Norwegian, the macrolanguage) is ``nb``: lid.176 and CLD3 say ``no`` for Bokmål text,
  which is what nearly all written Norwegian is; Nynorsk keeps its own code ``nn``.
* ``fil`` (Filipino) is ``tl``: Filipino is standardised Tagalog, and the models label it ``tl``.
* ``kmr`` (Northern Kurdish, Kurmanji) is ``ku``: what the models and locales call Kurdish is
  Kurmanji in Latin script; Central Kurdish (Sorani, Arabic script) keeps ``ckb``.

Pairs that stay apart on purpose, because they are distinct standard languages a blend may
want to weigh differently, are resolved by the identifiers instead (``curation.classify.identifiers``):
Croatian ``hr`` / Bosnian ``bs`` / Serbian ``sr`` (a model that only knows Serbo-Croatian says
``sh``), Malay ``ms`` / Indonesian ``id``. Every Chinese variety written in Han characters
(``cmn``, ``zho``, locales ``zh_CN``, ``zh_TW``, ``zh_HK``) is ``zh``; Cantonese ``yue`` stays apart.
"""


@cache
def normalize_language_code(label: str) -> str:
    """Map a model label or a locale to ISO 639-1, else 639-3, with the merges above.

    Accepts fastText labels (``__label__de``), GlotLID / NLLB (``deu_Latn``), ISO 639-2/B
    (``ger``), BCP-47 (``zh-Latn``) and locale names (``pt_BR``, ``sr@latin``).
    """
    code = re.split(r"[_@.-]", label.removeprefix("__label__"), maxsplit=1)[0].lower()
    if len(code) == 3:
        code = ISO_639_3_TO_1.get(code) or ISO_639_2B_TO_1.get(code) or INDIVIDUAL_TO_MACRO_1.get(code) or code
    code = RETIRED_TO_CURRENT.get(code, code)
    return MERGED_LANGUAGES.get(code, code)


def has_iso_639_1(code: str) -> bool:
    """Whether a normalised code is ISO 639-1 (two letters: `normalize_language_code` prefers them)."""
    return len(code) == 2
