"""The predicate language against a plain-Python reference, on real text with every column kind.

The reference spells out SQL's three-valued logic by hand (None is null), so each expression's
selected ids are worked out independently of pyarrow.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpusmill.curation.errors import ConfigError
from corpusmill.curation.select.expression import (
    MAX_DEPTH,
    ExpressionError,
    column_names,
    columns_from_schemas,
    compile_predicate,
    parse,
    string_columns,
)

Row = dict[str, Any]


def cmp(op: Callable[[Any, Any], bool], a: Any, b: Any) -> bool | None:
    return None if a is None or b is None else op(a, b)


def and3(*values: bool | None) -> bool | None:
    return False if False in values else None if None in values else True


def or3(*values: bool | None) -> bool | None:
    return True if True in values else None if None in values else False


def not3(value: bool | None) -> bool | None:
    return None if value is None else not value


def member(value: Any, container: list[Any] | None) -> bool | None:
    return None if value is None or container is None else value in container


gt, lt, ge, eq, ne = operator.gt, operator.lt, operator.ge, operator.eq, operator.ne

# Expression -> the same predicate in plain Python over a row (r.get: the third shard lacks `score`).
CASES: dict[str, Callable[[Row], bool | None]] = {
    "lines > 300 and mean_line < 30": lambda r: and3(cmp(gt, r["lines"], 300), cmp(lt, r["mean_line"], 30)),
    "'long_line' in reasons": lambda r: member("long_line", r["reasons"]),
    "'todo' not in reasons or has_main": lambda r: or3(not3(member("todo", r["reasons"])), r["has_main"]),
    "score is null": lambda r: r.get("score") is None,
    "score * 100 >= 5 and first_import in ['os', 'sys']": lambda r: and3(
        None if r.get("score") is None else r["score"] * 100 >= 5, member(r["first_import"], ["os", "sys"])
    ),
    "first_import is not null and not (first_import == 'sys')": lambda r: and3(
        r["first_import"] is not None, not3(cmp(eq, r["first_import"], "sys"))
    ),
    "(lines - 1) / lines > 0.9975 or source != 'lib'": lambda r: or3(
        (r["lines"] - 1) / r["lines"] > 0.9975, r["source"] != "lib"
    ),
    "not has_main": lambda r: not3(r["has_main"]),
    "first_import not in ['os', 're']": lambda r: not3(member(r["first_import"], ["os", "re"])),
    "-lines + 2 * mean_line < -100": lambda r: -r["lines"] + 2 * r["mean_line"] < -100,
    "has_main == false or lines <= 200 and source == 'tools'": lambda r: or3(
        cmp(eq, r["has_main"], False), and3(r["lines"] <= 200, r["source"] == "tools")
    ),
    "reasons is null or 'no_docstring' in reasons": lambda r: or3(
        r["reasons"] is None, member("no_docstring", r["reasons"])
    ),
    "source < 'm' and id >= 'py-020'": lambda r: r["source"] < "m" and r["id"] >= "py-020",
    "lines in [64, 148, 1013] or lines / (lines - lines) is not null": lambda r: r["lines"] in (64, 148, 1013),
}


def selected(expression: str, annotated: Any) -> list[str]:
    """Ids the expression selects, shard by shard, each checked against all shards' schemas."""
    paths = sorted(annotated.root.glob("*.parquet"))
    columns = columns_from_schemas(pq.read_schema(path) for path in paths)
    predicate = compile_predicate(expression, columns)
    ids = []
    for path in paths:
        table = pq.read_table(path)
        table = table.filter(pa.array([bool(text.strip()) for text in table["text"].to_pylist()]))
        ids += table.filter(predicate.mask(table))["id"].to_pylist()
    return ids


@pytest.mark.parametrize("expression", CASES)
def test_selection_matches_the_python_reference(expression: str, annotated: Any) -> None:
    expected = [row["id"] for row in annotated.documents if CASES[expression](row) is True]
    assert 0 < len(expected) < len(annotated.documents), "each case must keep some rows and drop others"
    assert selected(expression, annotated) == expected


def test_precedence_and_constants() -> None:
    table = pa.table({"x": [1, 2, 3]})
    columns = columns_from_schemas([table.schema])

    def ids(expression: str) -> list[int]:
        return table.filter(compile_predicate(expression, columns).mask(table))["x"].to_pylist()

    assert ids("1 + 2 * 3 == 7") == [1, 2, 3]
    assert ids("(1 + 2) * 3 == 7") == []
    assert ids("x - 1 - 1 == 0") == [2], "subtraction is left-associative"
    assert ids("12 / 2 / 3 == x") == [2], "so is division"
    assert ids("x == 1 or x == 2 and x == 3") == [1], "`and` binds tighter than `or`"
    assert ids("not x == 1 and x < 3") == [2], "`not` binds tighter than `and`, looser than `==`"
    assert ids("- - x == x") == [1, 2, 3]
    assert ids("x in [-1, 2, 3.0]") == [2, 3]
    assert ids("true and not false") == [1, 2, 3]


def test_nulls_count_as_not_selected_but_kleene_logic_holds() -> None:
    table = pa.table({"v": pa.array([1.0, None, float("nan")]), "tags": [["a"], None, ["a", None]]})
    columns = columns_from_schemas([table.schema])

    def mask(expression: str) -> list[bool]:
        return compile_predicate(expression, columns).mask(table).to_pylist()

    assert mask("v > 0") == [True, False, False], "null and NaN compare false"
    assert mask("not (v > 0)") == [False, False, True], "not null is null: the null row is still dropped"
    assert mask("v is null") == [False, True, False], "NaN is a number, not a null"
    assert mask("v > 0 or true") == [True, True, True], "null or true is true"
    assert mask("not (v > 0 and false)") == [True, True, True], "null and false is false"
    assert mask("'a' in tags") == [True, False, True]
    assert mask("'a' not in tags") == [False, False, False]
    assert mask("v in [1]") == [True, False, False] and mask("v not in [1]") == [False, False, True]
    assert mask("v / (v - 1) is null") == [True, True, False], "x / 0 is null; NaN stays NaN"


def test_a_list_column_tested_against_another_column_row_by_row() -> None:
    table = pa.table({"want": ["b", "z", None], "tags": [["a", "b"], ["z"], ["a"]]})
    predicate = compile_predicate("want in tags", columns_from_schemas([table.schema]))
    assert predicate.mask(table).to_pylist() == [True, True, False]


def test_kinds_across_shards() -> None:
    schemas = [
        pa.schema([("n", pa.int8()), ("s", pa.large_string()), ("mixed", pa.int64()), ("empty", pa.null())]),
        pa.schema([("n", pa.float64()), ("s", pa.dictionary(pa.int32(), pa.string())), ("mixed", pa.string())]),
    ]
    columns = {column.name: column for column in columns_from_schemas(schemas)}
    assert (columns["n"].kind, columns["s"].kind, columns["empty"].kind) == ("number", "string", "null")
    assert columns["mixed"].kind is None
    with pytest.raises(ExpressionError, match=r"column `mixed` is int64 / string, which the language cannot read"):
        compile_predicate("mixed == 1", list(columns.values()))
    table = pa.table({"empty": pa.nulls(2)})
    assert compile_predicate("empty is null and not (empty == 1)", list(columns.values())).mask(table).to_pylist() == [
        False,
        False,
    ]


@pytest.mark.parametrize(
    "expression, problem, position",
    [
        ("lnag == 'en'", r"unknown column `lnag`; did you mean `lang`\? \(columns: lang, n, tags\)", 0),
        ("n + lang > 1", r"`\+` needs numbers on both sides; `lang` is a string", 4),
        ("lang == 1", r"`lang == 1` compares a string with a number", 0),
        ("n", r"the expression is a number, not a condition", 0),
        ("tags == 'a'", r"`tags` is a list; test membership with `'value' in tags`", 0),
        ("1 in tags", r"`tags` holds strings; `1` is a number", 0),
        ("'a' in lang", r"`in` needs a list `\[...\]` or a list column on its right; `lang` is a string", 7),
        ("n in [1, 'x']", r"a list holds one kind of value; `'x'` is a string, not a number", 9),
        ("lang in [1]", r"`in` tests against a list of numbers; `lang` is a string", 0),
        ("not lang", r"`not` needs a condition; `lang` is a string", 4),
        ("n / 0 > 1", r"division by zero", 4),
        ("n < 1 < 2", r"comparisons do not chain", 6),
        ("n == null", r"`null` only appears in `is null`", 5),
        ("n is 3", r"expected `null` after `is` / `is not`, found `3`", 5),
        ("(n > 1", r"expected `\)`, found the end of the expression", 6),
        ("n > 1 lang", r"unexpected `lang` after a complete expression", 6),
        ("lang == 'en", r"this string is never closed", 8),
        ("lang == 'a\\q'", r"unknown escape in a string", 10),
        ("n = 1", r"unexpected character '=': use `==` to compare", 2),
        ("n > 1 && n < 3", r"unexpected character '&': use `and`", 6),
        ("n == 1.", r"a decimal point must be followed by digits", 6),
        ("n == 1e", r"an exponent needs digits", 6),
        ("n == 0x1f", r"malformed number `0x`", 5),
        ("n == 99999999999999999999", r"the number 99999999999999999999 is too large", 5),
        ("  ", r"the expression is empty", 2),
    ],
)
def test_errors_name_the_problem_and_the_position(expression: str, problem: str, position: int) -> None:
    columns = columns_from_schemas(
        [pa.schema([("lang", pa.string()), ("n", pa.int64()), ("tags", pa.list_(pa.string()))])]
    )
    with pytest.raises(ConfigError, match=problem) as caught:
        compile_predicate(expression, columns)
    assert isinstance(caught.value, ExpressionError) and caught.value.position == position
    snippet, caret = str(caught.value).split("\n")[1:]
    assert caret.index("^") - 2 == position and snippet == "  " + expression


def test_the_caret_points_into_the_right_line_of_a_multi_line_expression() -> None:
    expression = "lang == 'en'\n  and n > 'x'"
    with pytest.raises(ExpressionError) as caught:
        compile_predicate(expression, string_columns(["lang"]) + columns_from_schemas([pa.schema([("n", pa.int64())])]))
    assert str(caught.value).split("\n")[1:] == ["    and n > 'x'", "        ^"]


def test_operator_chains_are_n_ary_or_bounded() -> None:
    columns = columns_from_schemas([pa.schema([("n", pa.int64())])])
    many = " or ".join(f"n == {i}" for i in range(500))  # n-ary: as deep as one comparison
    table = pa.table({"n": [3, 1700]})
    assert compile_predicate(many, columns).mask(table).to_pylist() == [True, False]
    assert compile_predicate("n in [" + ", ".join(map(str, range(1500))) + "]", columns).mask(table).to_pylist() == [
        True,
        False,
    ]
    sums = "+".join(["n"] * (MAX_DEPTH - 1)) + " > 1"  # (MAX_DEPTH - 2) additions under one comparison
    compile_predicate(sums, columns)
    with pytest.raises(ExpressionError, match=f"nests deeper than {MAX_DEPTH} levels"):
        compile_predicate("+".join(["n"] * (MAX_DEPTH + 1)) + " > 1", columns)


def test_column_names_are_listed_in_order_without_checking() -> None:
    tree = parse("b > 1 and (a in [1] or 'x' in tags) and not b is null and c / a < 2")
    assert column_names(tree) == ["b", "a", "tags", "c"]


def test_the_readme_examples_check_against_the_annotated_columns() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### `corpusmill select")[1].split("\n### ")[0]
    examples = re.findall(r'--where "([^"]+)"', section)
    assert len(examples) == 4
    annotated = pa.schema(
        [
            ("id", pa.string()),
            ("lang", pa.string()),
            ("category", pa.string()),
            ("code_lang", pa.string()),
            ("ppl", pa.float32()),
            ("quality_bucket", pa.string()),
            ("quality_reasons", pa.list_(pa.string())),
        ]
    )
    for example in examples:
        compile_predicate(example, columns_from_schemas([annotated]))
