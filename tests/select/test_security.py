"""No code execution from configuration: the predicate language refuses every escape attempt.

Each attempt is a ConfigError raised by the tokenizer or the parser, with Python's own
evaluators booby-trapped meanwhile, and none of the side effects it asks for happens.
"""

from __future__ import annotations

import ast
import builtins
import inspect
from pathlib import Path

import pyarrow as pa
import pytest

from corpusmill.curation.errors import ConfigError
from corpusmill.curation.select import expression
from corpusmill.curation.select.expression import (
    MAX_LENGTH,
    MAX_NESTING,
    ExpressionError,
    columns_from_schemas,
    compile_predicate,
)

SENTINEL = Path("/tmp/corpusmill-select-escape-sentinel")
TOUCH = f"touch {SENTINEL}"

ESCAPES = {
    "import": f"__import__('os').system('{TOUCH}')",
    "dunder name": "__builtins__ == 1",
    "dunder in a list": "x in [__name__]",
    "attribute": "x.upper() == 'A'",
    "class walk": "x.__class__.__mro__[1].__subclasses__()",
    "attribute on a literal": "''.__class__ == 1",
    "call": f"system('{TOUCH}')",
    "call after an operator": "x == open('/etc/passwd')",
    "eval": "eval('1') == 1",
    "exec": "exec('import os')",
    "lambda": "(lambda: 1)() == 1",
    "lambda bare": "lambda x: x",
    "list comprehension": "[c for c in x] == x",
    "generator": "any(c for c in x)",
    "comprehension inside in": "x in [c for c in 'abc']",
    "conditional expression": "1 if x else 2",
    "subscript": "x[0] == 'a'",
    "slice": "x[::-1] == 'a'",
    "f-string": "f'{__import__(\"os\")}' == x",
    "byte string": "b'x' == x",
    "raw string": "r'x' == x",
    "backticks": "`id` == 1",
    "semicolon": f"x == 'a'; __import__('os').system('{TOUCH}')",
    "newline statement": "x == 'a'\nimport os",
    "walrus": "(y := 1) == 1",
    "assignment": "x = 'a'",
    "dict": "{'a': 1} == x",
    "set": "{1} == x",
    "starred": "*x == 1",
    "power": "2 ** 10 == 1024",
    "bitwise": "x & 1",
    "decorator": "@x == 1",
    "keyword None": "x is None",
    "keyword True": "True",
    "import statement": "import os",
    "global": "global x",
    "unicode lookalike dot": "x\u2024upper == 1",
    "unicode name": "\u00e9t\u00e9 == 1",
    "fullwidth digit": "x == \uff11",
    "NUL": "x == 'a'\x00",
    "escape in string": "x == '\\x41'",
    "string with a quote trick": "x == 'a' + __import__('os').name",
}


@pytest.fixture
def trapped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python's evaluators fail loudly if anything calls them while the language works."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the predicate language called a Python evaluator")

    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, refuse)
    monkeypatch.setattr(ast, "parse", refuse)


COLUMNS = columns_from_schemas([pa.schema([("x", pa.string()), ("n", pa.int64())])])


@pytest.mark.parametrize("attempt", ESCAPES.values(), ids=ESCAPES.keys())
def test_escape_attempts_are_refused_without_running_anything(attempt: str, trapped: None) -> None:
    SENTINEL.unlink(missing_ok=True)
    with pytest.raises(ConfigError) as caught:
        compile_predicate(attempt, COLUMNS)
    assert isinstance(caught.value, ExpressionError)
    assert "^" in str(caught.value), "the error shows where"
    assert not SENTINEL.exists()


def test_a_valid_predicate_parses_and_evaluates_with_the_evaluators_trapped(trapped: None) -> None:
    table = pa.table({"x": ["__import__('os')", "a"], "n": [1, 2]})
    predicate = compile_predicate("x == '__import__(\\'os\\')' or n * 2 > 3", COLUMNS)
    assert predicate.mask(table).to_pylist() == [True, True], "a string literal is only ever data"


@pytest.mark.parametrize(
    "attempt, problem",
    [
        ("(" * 10_000 + "n > 1" + ")" * 10_000, f"longer than {MAX_LENGTH:,} characters"),
        ("(" * 4000 + "n > 1" + ")" * 4000, f"more than {MAX_NESTING} nested parentheses"),
        ("not " * 2000 + "n > 1", f"more than {MAX_NESTING} nested parentheses, `not` or `-`"),
        ("- " * 4000 + "n > 1", f"more than {MAX_NESTING} nested parentheses, `not` or `-`"),
        ("n" + " + n" * 2400 + " > 1", "nests deeper than"),
        ("x == '" + "a" * 2_000_000 + "'", "longer than"),
    ],
)
def test_absurd_input_is_refused_without_recursion_errors(attempt: str, problem: str) -> None:
    with pytest.raises(ExpressionError, match=problem):
        compile_predicate(attempt, COLUMNS)


def test_the_module_never_reaches_for_a_python_evaluator() -> None:
    """Read the language's own source: no eval/exec/compile/__import__/getattr-on-input, no ast."""
    tree = ast.parse(inspect.getsource(expression))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"ast", "builtins", "importlib", "operator", "pickle", "marshal", "code", "codeop"}
    called = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert not called & {"eval", "exec", "compile", "__import__", "getattr", "globals", "locals", "vars", "open"}
