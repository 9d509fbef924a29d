"""`--where` predicates: a small expression language over a dataset's columns, never Python.

A predicate comes from configuration (a command line, a pipeline YAML, a blend spec), and
configuration must never run code (issue 15). So this module has its own tokenizer and
recursive-descent parser and builds its own small tree; nothing here calls ``eval``,
``exec``, ``compile`` or the ``ast`` module, and no name in an expression can reach a Python
object: a name is a column, and the tree only knows the operators below. A parsed
expression is type-checked against the input's columns before any work, then evaluated per
Arrow batch with ``pyarrow.compute`` (vectorised; no per-row Python).

Grammar, lowest precedence first::

    predicate  := or
    or         := and ('or' and)*
    and        := not ('and' not)*
    not        := 'not' not | comparison
    comparison := sum [ ('==' | '!=' | '<' | '<=' | '>' | '>=') sum
                      | ['not'] 'in' (list | NAME)
                      | 'is' ['not'] 'null' ]
    sum        := product (('+' | '-') product)*
    product    := unary (('*' | '/') unary)*
    unary      := '-' unary | atom
    atom       := NUMBER | STRING | 'true' | 'false' | NAME | '(' predicate ')'
    list       := '[' [literal (',' literal)* [',']] ']'
    literal    := ['-'] NUMBER | STRING | 'true' | 'false'

NAME is a column (ASCII letters, digits and ``_``, not starting with a digit or ``__``);
STRING is ``'...'`` or ``"..."`` with the escapes ``\\\\ \\' \\" \\n \\t``; comparisons do not
chain. ``x in [...]`` tests a value against literals; ``v in col`` tests membership in a
list column (``'gopher_short_doc' in quality_reasons``).

Types: numbers (any integer, float or decimal column), strings, booleans and lists of them.
``== !=`` compare two of one kind; ``< <= > >=`` order numbers or strings; ``+ - * /``
take numbers and compute in float64 (``x / 0`` is null); ``and or not`` take booleans.

Nulls follow SQL: a comparison, arithmetic or membership test with a null is null;
``and`` / ``or`` are three-valued (``null or true`` is true, ``null and false`` is false),
``not null`` is null; and a row whose predicate is null is *not* selected. So
``not (ppl > 300)`` drops rows without a ``ppl``; write ``ppl is null or ppl <= 300`` to keep
them. NaN is a number, not a null. A column that some input shards lack is null there.
"""

from __future__ import annotations

import difflib
import keyword
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpusmill.curation.errors import ConfigError

MAX_LENGTH = 10_000  # characters: a predicate, not a program
MAX_NESTING = 32  # parentheses, `not` and unary `-` inside one another (bounds the parser's recursion)
MAX_DEPTH = 64  # height of the parsed tree (bounds the checker's recursion)
_SNIPPET = 60  # characters shown either side of an error's caret

NUMBER, STRING, BOOL, NULL = "number", "string", "bool", "null"
_SCALAR_KINDS = (NUMBER, STRING, BOOL)
KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "true", "false"})
_COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
_OPERATORS = (*_COMPARISONS, "+", "-", "*", "/", "(", ")", "[", "]", ",")
# Python keywords are refused outright, with a message that says so (a column cannot be named `lambda`).
_PYTHON_WORDS = (frozenset(keyword.kwlist) - KEYWORDS) | {"exec", "eval"}
# Characters that are not part of the language, and what a user who typed them probably wanted.
_REFUSED_CHARACTERS = {
    ".": "attribute access is not part of the language",
    ";": "an expression is one predicate, not statements",
    "`": "backticks are not part of the language; strings use '...' or \"...\"",
    "=": "use `==` to compare",
    "!": "use `!=` or `not`",
    "&": "use `and`",
    "|": "use `or`",
    "{": "sets and dictionaries are not part of the language; lists use [...]",
    "}": "sets and dictionaries are not part of the language; lists use [...]",
    ":": "slices, lambdas and dictionaries are not part of the language",
    "@": "decorators and matrix products are not part of the language",
    "\\": "a backslash only appears inside a string",
    "%": "only + - * / are arithmetic operators",
    "~": "use `not`",
    "^": "use `and`, `or` and `not`",
    "#": "comments are not part of the language",
    "$": "column names are written bare, e.g. quality_bucket",
}


class ExpressionError(ConfigError):
    """An expression that does not parse or does not fit the columns; shows where, with a caret."""

    def __init__(self, text: str, position: int, problem: str):
        self.position = position
        self.problem = problem
        super().__init__(f"{problem} (at position {position})\n{_caret(text, position)}")


def _caret(text: str, position: int) -> str:
    """The line around ``position`` with a caret under it (control characters shown as ``?``)."""
    start = max(text.rfind("\n", 0, position) + 1, position - _SNIPPET)
    end = text.find("\n", position)
    end = min(len(text) if end < 0 else end, position + _SNIPPET)
    shown = "".join(ch if ch.isprintable() else "?" for ch in text[start:end])
    return f"  {shown}\n  {' ' * (position - start)}^"


# --- tokens -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # "number", "string", "name", "keyword", "op" or "end"
    text: str  # as written (for "string" and "number": the decoded value's source)
    position: int
    value: object = None  # a number's or a string's value


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an ``end`` token; anything outside the language is an error."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(text, MAX_LENGTH, f"the expression is longer than {MAX_LENGTH:,} characters")
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char in " \t\r\n":
            position += 1
        elif char.isascii() and (char.isalpha() or char == "_"):
            position = _name(text, position, tokens)
        elif _is_digit(char):
            position = _number(text, position, tokens)
        elif char in "'\"":
            position = _string(text, position, tokens)
        elif (operator := next((op for op in _OPERATORS if text.startswith(op, position)), None)) is not None:
            tokens.append(Token("op", operator, position))
            position += len(operator)
        else:
            hint = _REFUSED_CHARACTERS.get(char)
            if hint is None:
                hint = "not part of the language" + (
                    "; column names are ASCII letters, digits and _" if char.isalpha() else ""
                )
            raise ExpressionError(text, position, f"unexpected character {char!r}: {hint}")
    tokens.append(Token("end", "", len(text)))
    return tokens


def _name(text: str, start: int, tokens: list[Token]) -> int:
    end = start
    while end < len(text) and text[end].isascii() and (text[end].isalnum() or text[end] == "_"):
        end += 1
    word = text[start:end]
    if end < len(text) and text[end] in "'\"":
        raise ExpressionError(text, start, f"`{word}{text[end]}`: string prefixes (f'', b'', r'') are not supported")
    if word.startswith("__"):
        raise ExpressionError(text, start, f"`{word}`: names starting with `__` are refused")
    if word in _PYTHON_WORDS:
        hint = {"None": "; write `is null`", "True": "; write `true`", "False": "; write `false`"}.get(word, "")
        raise ExpressionError(text, start, f"`{word}` is Python, not part of this language{hint}")
    tokens.append(Token("keyword" if word in KEYWORDS else "name", word, start))
    return end


def _is_digit(char: str) -> bool:
    return "0" <= char <= "9"


def _number(text: str, start: int, tokens: list[Token]) -> int:
    end = start
    while end < len(text) and _is_digit(text[end]):
        end += 1
    is_float = False
    if end < len(text) and text[end] == ".":
        if not (end + 1 < len(text) and _is_digit(text[end + 1])):
            raise ExpressionError(
                text, end, "a decimal point must be followed by digits (attribute access is not part of the language)"
            )
        is_float = True
        end += 1
        while end < len(text) and _is_digit(text[end]):
            end += 1
    if end < len(text) and text[end] in "eE":
        exponent = end + 1 + (end + 1 < len(text) and text[end + 1] in "+-")
        if not (exponent < len(text) and _is_digit(text[exponent])):
            raise ExpressionError(text, end, "an exponent needs digits, e.g. 1e6")
        is_float = True
        end = exponent
        while end < len(text) and _is_digit(text[end]):
            end += 1
    if end < len(text) and text[end].isascii() and (text[end].isalnum() or text[end] == "_"):
        raise ExpressionError(text, start, f"malformed number `{text[start : end + 1]}`")
    written = text[start:end]
    value: int | float = float(written) if is_float else int(written)
    if not math.isfinite(value) or abs(value) > 2**63 - 1:
        raise ExpressionError(text, start, f"the number {written} is too large")
    tokens.append(Token("number", written, start, value))
    return end


_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}
_UNESCAPES = {value: key for key, value in _ESCAPES.items() if key != '"'}


def _string(text: str, start: int, tokens: list[Token]) -> int:
    quote = text[start]
    chars: list[str] = []
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == quote:
            tokens.append(Token("string", text[start : position + 1], start, "".join(chars)))
            return position + 1
        if char == "\\":
            escaped = text[position + 1] if position + 1 < len(text) else ""
            if escaped not in _ESCAPES:
                raise ExpressionError(text, position, "unknown escape in a string; use \\\\ \\' \\\" \\n or \\t")
            chars.append(_ESCAPES[escaped])
            position += 2
        else:
            chars.append(char)
            position += 1
    raise ExpressionError(text, start, "this string is never closed")


# --- the tree -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """A parsed expression; ``start``/``end`` locate it in the text, for error messages."""

    start: int
    end: int
    height: int = field(default=1, kw_only=True)


@dataclass(frozen=True)
class Literal(Node):
    value: int | float | str | bool


@dataclass(frozen=True)
class ColumnRef(Node):
    name: str


@dataclass(frozen=True)
class ListLiteral(Node):
    items: tuple[Literal, ...]


@dataclass(frozen=True)
class Negate(Node):
    operand: Node


@dataclass(frozen=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True)
class Arithmetic(Node):
    operator: str  # + - * /
    left: Node
    right: Node


@dataclass(frozen=True)
class Comparison(Node):
    operator: str  # == != < <= > >=
    left: Node
    right: Node


@dataclass(frozen=True)
class Logical(Node):
    operator: str  # and / or, over two or more operands
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Membership(Node):
    """``value [not] in container``: the container is a list literal or a list column."""

    value: Node
    container: ListLiteral | ColumnRef
    negated: bool


@dataclass(frozen=True)
class IsNull(Node):
    operand: Node
    negated: bool


# --- parser -------------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the grammar in the module docstring, with bounded nesting."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0
        self.nesting = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def fail(self, token: Token, problem: str) -> ExpressionError:
        return ExpressionError(self.text, token.position, problem)

    def take(self) -> Token:
        token = self.token
        self.index += 1
        return token

    def at(self, kind: str, *texts: str) -> bool:
        return self.token.kind == kind and (not texts or self.token.text in texts)

    def expect(self, kind: str, text: str, what: str) -> Token:
        if not self.at(kind, text):
            raise self.fail(self.token, f"expected {what}, found {self.found()}")
        return self.take()

    def found(self) -> str:
        return "the end of the expression" if self.token.kind == "end" else f"`{self.token.text}`"

    def node(self, cls: type[Node], start: int, *args: object, children: Sequence[Node]) -> Node:
        """Build a node, refusing trees taller than MAX_DEPTH (long operator chains)."""
        height = 1 + max((child.height for child in children), default=0)
        if height > MAX_DEPTH:
            raise ExpressionError(self.text, start, f"the expression nests deeper than {MAX_DEPTH} levels")
        end = self.tokens[self.index - 1].position + len(self.tokens[self.index - 1].text)
        return cls(start, end, *args, height=height)

    def nested(self, token: Token) -> None:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise self.fail(token, f"more than {MAX_NESTING} nested parentheses, `not` or `-`")

    def parse(self) -> Node:
        if self.at("end"):
            raise self.fail(self.token, "the expression is empty")
        tree = self.parse_or()
        if not self.at("end"):
            raise self.fail(self.token, f"unexpected {self.found()} after a complete expression")
        return tree

    def parse_or(self) -> Node:
        return self.logical("or", self.parse_and)

    def parse_and(self) -> Node:
        return self.logical("and", self.parse_not)

    def logical(self, word: str, operand: Callable[[], Node]) -> Node:
        start = self.token.position
        operands = [operand()]
        while self.at("keyword", word):
            self.take()
            operands.append(operand())
        if len(operands) == 1:
            return operands[0]
        return self.node(Logical, start, word, tuple(operands), children=operands)

    def parse_not(self) -> Node:
        if not self.at("keyword", "not"):
            return self.parse_comparison()
        token = self.take()
        self.nested(token)
        operand = self.parse_not()
        self.nesting -= 1
        return self.node(Not, token.position, operand, children=[operand])

    def parse_comparison(self) -> Node:
        start = self.token.position
        left = self.parse_sum()
        if self.at("op", *_COMPARISONS):
            operator = self.take().text
            right = self.parse_sum()
            if self.at("op", *_COMPARISONS):
                raise self.fail(self.token, "comparisons do not chain; write `a < b and b < c`")
            return self.node(Comparison, start, operator, left, right, children=[left, right])
        if self.at("keyword", "in") or (self.at("keyword", "not") and self.tokens[self.index + 1].text == "in"):
            negated = self.take().text == "not"
            if negated:
                self.take()
            container = self.parse_container()
            return self.node(Membership, start, left, container, negated, children=[left, container])
        if self.at("keyword", "is"):
            self.take()
            negated = self.at("keyword", "not")
            if negated:
                self.take()
            self.expect("keyword", "null", "`null` after `is` / `is not`")
            return self.node(IsNull, start, left, negated, children=[left])
        return left

    def parse_container(self) -> ListLiteral | ColumnRef:
        if self.at("name"):
            token = self.take()
            return self.node(ColumnRef, token.position, token.text, children=[])  # type: ignore[return-value]
        start = self.expect("op", "[", "a list `[...]` or a list column after `in`").position
        items: list[Literal] = []
        while not self.at("op", "]"):
            items.append(self.parse_literal())
            if not self.at("op", "]"):
                self.expect("op", ",", "`,` or `]` in a list")
        self.take()
        return self.node(ListLiteral, start, tuple(items), children=[])  # type: ignore[return-value]

    def parse_literal(self) -> Literal:
        start = self.token
        sign = 1
        if self.at("op", "-"):
            self.take()
            sign = -1
        token = self.token
        if token.kind == "number":
            self.take()
            return self.node(Literal, start.position, sign * token.value, children=[])  # type: ignore[return-value,operator]
        if sign == 1 and (token.kind == "string" or self.at("keyword", "true", "false")):
            self.take()
            value = token.value if token.kind == "string" else token.text == "true"
            return self.node(Literal, token.position, value, children=[])  # type: ignore[return-value]
        raise self.fail(token, f"a list holds literals (numbers, strings, true, false), found {self.found()}")

    def parse_sum(self) -> Node:
        return self.binary(("+", "-"), self.parse_product)

    def parse_product(self) -> Node:
        return self.binary(("*", "/"), self.parse_unary)

    def binary(self, operators: tuple[str, ...], operand: Callable[[], Node]) -> Node:
        start = self.token.position
        left = operand()
        while self.at("op", *operators):
            operator = self.take().text
            right = operand()
            left = self.node(Arithmetic, start, operator, left, right, children=[left, right])
        return left

    def parse_unary(self) -> Node:
        if not self.at("op", "-"):
            return self.parse_atom()
        token = self.take()
        self.nested(token)
        operand = self.parse_unary()
        self.nesting -= 1
        return self.node(Negate, token.position, operand, children=[operand])

    def parse_atom(self) -> Node:
        token = self.token
        if token.kind in ("number", "string") or self.at("keyword", "true", "false"):
            self.take()
            value = token.value if token.kind != "keyword" else token.text == "true"
            return self.node(Literal, token.position, value, children=[])
        if token.kind == "name":
            self.take()
            follower = self.token
            if follower.kind == "op" and follower.text in "([":
                what = "function calls" if follower.text == "(" else "subscripts"
                raise self.fail(follower, f"{what} are not part of the language (`{token.text}{follower.text}`)")
            return self.node(ColumnRef, token.position, token.text, children=[])
        if self.at("op", "("):
            self.take()
            self.nested(token)
            inner = self.parse_or()
            self.nesting -= 1
            self.expect("op", ")", "`)`")
            return inner
        if self.at("keyword", "null"):
            raise self.fail(token, "`null` only appears in `is null` / `is not null`")
        if self.at("op", "["):
            raise self.fail(token, "a list only appears after `in`")
        raise self.fail(token, f"expected a value, a column or `(`, found {self.found()}")


def parse(text: str) -> Node:
    """The tree of ``text``, or an :class:`ExpressionError` saying where it stops being the language."""
    return _Parser(text).parse()


def quoted(value: str) -> str:
    """``value`` as a string literal of the language, so configuration written as a mapping
    (a blend's ``select: {source: web}``) becomes an expression without any value being code."""
    escaped = "".join("\\" + _UNESCAPES[char] if char in _UNESCAPES else char for char in value)
    return f"'{escaped}'"


def is_column_name(name: str) -> bool:
    """Whether an expression can name ``name`` as a column (``quality_bucket``; not ``in`` or ``a-b``)."""
    try:
        return isinstance(parse(name), ColumnRef)
    except ExpressionError:
        return False


def column_names(tree: Node) -> list[str]:
    """The columns a parsed expression names, in order of first appearance (nothing is checked)."""
    names: list[str] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ColumnRef) and node.name not in names:
            names.append(node.name)
        pending += reversed(_children(node))
    return names


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, (Negate, Not, IsNull)):
        return (node.operand,)
    if isinstance(node, (Arithmetic, Comparison)):
        return (node.left, node.right)
    if isinstance(node, Membership):
        return (node.value, node.container)
    if isinstance(node, Logical):
        return node.operands
    return ()


# --- columns and their kinds ---------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnType:
    """A column of the input as the language sees it: its kind, or why it cannot be read."""

    name: str
    kind: str | None  # number, string, bool, null, list<...>; None when the language cannot read it
    arrow_type: str  # as the input stores it, for messages


def _kind_of(dtype: pa.DataType) -> str | None:
    if pa.types.is_dictionary(dtype):
        return _kind_of(dtype.value_type)
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return NUMBER
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return STRING
    if pa.types.is_boolean(dtype):
        return BOOL
    if pa.types.is_null(dtype):
        return NULL
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_fixed_size_list(dtype):
        inner = _kind_of(dtype.value_type)
        return f"list<{inner}>" if inner in _SCALAR_KINDS else None
    return None


def columns_from_schemas(schemas: Iterable[pa.Schema]) -> tuple[ColumnType, ...]:
    """The input's columns over all its shards' schemas; a column whose kind differs between
    shards cannot be read (a column that some shards lack is null in those)."""
    seen: dict[str, list[pa.DataType]] = {}
    for schema in schemas:
        for name, dtype in zip(schema.names, schema.types):
            seen.setdefault(name, [])
            if dtype not in seen[name]:
                seen[name].append(dtype)
    columns = []
    for name, dtypes in seen.items():
        kinds = {_kind_of(dtype) for dtype in dtypes} - {NULL} or {NULL}
        described = " / ".join(str(dtype) for dtype in dtypes)
        columns.append(ColumnType(name, kinds.pop() if len(kinds) == 1 else None, described))
    return tuple(columns)


def string_columns(names: Iterable[str]) -> tuple[ColumnType, ...]:
    """Columns that all hold strings (e.g. a blend's prefix keys)."""
    return tuple(ColumnType(name, STRING, "string") for name in names)


# A column that is null in every shard reads as boolean nulls: `and`, `or`, `not`, `is null` and
# arithmetic (through a cast) take them as they are; comparisons and membership answer null.
_PLAIN_TYPES = {NUMBER: pa.float64(), STRING: pa.string(), BOOL: pa.bool_(), NULL: pa.bool_()}


def _plain_type(kind: str) -> pa.DataType:
    """The Arrow type evaluation reads a column of ``kind`` as."""
    if kind.startswith("list<"):
        return pa.list_(_PLAIN_TYPES[kind[5:-1]])
    return _PLAIN_TYPES[kind]


def _read_column(table: pa.Table, column: ColumnType) -> pa.Array:
    """One column of a batch in its plain type (decoded dictionaries, float64 decimals), or
    nulls when the batch's shard lacks it."""
    assert column.kind is not None
    if column.name not in table.column_names:
        return pa.nulls(table.num_rows, _plain_type(column.kind))
    values = table.column(column.name).combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    keep_integers = column.kind == NUMBER and pa.types.is_integer(values.type)
    if not keep_integers and values.type != _plain_type(column.kind):
        values = pc.cast(values, _plain_type(column.kind), safe=False)  # decimals and huge integers round
    return values


# --- checking and compiling ----------------------------------------------------------------------

Value = pa.Array | pa.Scalar
Evaluate = Callable[[pa.Table], Value]


@dataclass(frozen=True)
class _Typed:
    kind: str
    evaluate: Evaluate


# Typed nulls taken from arrays: pa.scalar() imports pandas (to check for pandas objects), and
# this module is imported by every CLI command, for the blend and select options.
_NULL_BOOL = pa.nulls(1, pa.bool_())[0]
_NULL_FLOAT = pa.nulls(1, pa.float64())[0]


def _as_float(value: Value) -> Value:
    """Arithmetic is float64: no integer overflow; integers beyond 2**53 round."""
    return pc.cast(value, pa.float64(), safe=False)


def _all_null(table: pa.Table) -> pa.Array:
    return pa.nulls(table.num_rows, pa.bool_())


def _null_where(condition: Value, values: Value, null: pa.Scalar) -> Value:
    """``values``, except null where ``condition`` is true."""
    return pc.if_else(pc.fill_null(condition, False), null, values)


def _is_null(value: Value) -> Value:
    return pc.is_null(value) if isinstance(value, pa.Array) else pa.scalar(not value.is_valid)


def _contains(needle: Value, lists: pa.Array) -> pa.Array:
    """Per row, whether its list holds ``needle`` (a scalar, or one value per row); null where
    the list or the needle is null."""
    flat = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists)
    per_value = needle if isinstance(needle, pa.Scalar) else pc.take(needle, parents)
    hits = pc.fill_null(pc.equal(flat, per_value), False)
    found = np.zeros(len(lists), dtype=bool)
    found[parents.filter(hits).to_numpy()] = True
    return _null_where(pc.or_(pc.is_null(lists), _is_null(needle)), pa.array(found), _NULL_BOOL)


_ARITHMETIC = {"+": pc.add, "-": pc.subtract, "*": pc.multiply}
_COMPARE = {
    "==": pc.equal,
    "!=": pc.not_equal,
    "<": pc.less,
    "<=": pc.less_equal,
    ">": pc.greater,
    ">=": pc.greater_equal,
}


class _Checker:
    """Type-checks a tree against the columns and turns it into pyarrow.compute calls."""

    def __init__(self, text: str, columns: Sequence[ColumnType]):
        self.text = text
        self.columns = {column.name: column for column in columns}

    def fail(self, node: Node, problem: str) -> ExpressionError:
        return ExpressionError(self.text, node.start, problem)

    def quote(self, node: Node) -> str:
        return f"`{self.text[node.start : node.end]}`"

    def expect(self, node: Node, typed: _Typed, kinds: tuple[str, ...], role: str) -> None:
        if typed.kind not in (*kinds, NULL):
            raise self.fail(node, f"{role}; {self.quote(node)} is {_article(typed.kind)}")

    def check(self, node: Node) -> _Typed:
        rules: dict[type[Node], Callable[[Any], _Typed]] = {
            Literal: self._literal,
            ColumnRef: self._column,
            Negate: self._negate,
            Not: self._not,
            Logical: self._logical,
            Arithmetic: self._arithmetic,
            Comparison: self._comparison,
            Membership: self._membership,
            IsNull: self._is_null,
        }
        return rules[type(node)](node)

    def _literal(self, node: Literal) -> _Typed:
        scalar = pa.scalar(node.value)
        kind = BOOL if isinstance(node.value, bool) else STRING if isinstance(node.value, str) else NUMBER
        return _Typed(kind, lambda table: scalar)

    def _column(self, node: ColumnRef) -> _Typed:
        column = self.columns.get(node.name)
        if column is None:
            raise self.fail(node, _unknown_column(node.name, list(self.columns)))
        if column.kind is None:
            raise self.fail(
                node,
                f"column `{node.name}` is {column.arrow_type}, which the language cannot read "
                "(it reads numbers, strings, booleans and lists of them, of one kind in every shard)",
            )
        return _Typed(column.kind, lambda table: _read_column(table, column))

    def _negate(self, node: Negate) -> _Typed:
        operand = self.check(node.operand)
        self.expect(node.operand, operand, (NUMBER,), "`-` needs a number")
        return _Typed(NUMBER, lambda table: pc.negate(_as_float(operand.evaluate(table))))

    def _not(self, node: Not) -> _Typed:
        operand = self.check(node.operand)
        self.expect(node.operand, operand, (BOOL,), "`not` needs a condition")
        return _Typed(BOOL, lambda table: pc.invert(operand.evaluate(table)))

    def _logical(self, node: Logical) -> _Typed:
        operands = [self.check(operand) for operand in node.operands]
        for child, typed in zip(node.operands, operands):
            self.expect(child, typed, (BOOL,), f"`{node.operator}` joins conditions")
        combine = pc.and_kleene if node.operator == "and" else pc.or_kleene

        def evaluate(table: pa.Table) -> Value:
            result = operands[0].evaluate(table)
            for operand in operands[1:]:
                result = combine(result, operand.evaluate(table))
            return result

        return _Typed(BOOL, evaluate)

    def _arithmetic(self, node: Arithmetic) -> _Typed:
        left, right = self.check(node.left), self.check(node.right)
        for child, typed in ((node.left, left), (node.right, right)):
            self.expect(child, typed, (NUMBER,), f"`{node.operator}` needs numbers on both sides")
        if node.operator == "/" and isinstance(node.right, Literal) and node.right.value == 0:
            raise self.fail(node.right, "division by zero")

        def evaluate(table: pa.Table) -> Value:
            a, b = _as_float(left.evaluate(table)), _as_float(right.evaluate(table))
            if node.operator != "/":
                return _ARITHMETIC[node.operator](a, b)
            return _null_where(pc.equal(b, 0.0), pc.divide(a, b), _NULL_FLOAT)

        return _Typed(NUMBER, evaluate)

    def _comparison(self, node: Comparison) -> _Typed:
        left, right = self.check(node.left), self.check(node.right)
        allowed = _SCALAR_KINDS if node.operator in ("==", "!=") else (NUMBER, STRING)
        for child, typed in ((node.left, left), (node.right, right)):
            if typed.kind.startswith("list<"):
                raise self.fail(
                    child,
                    f"{self.quote(child)} is a list; test membership with `'value' in {self.text[child.start : child.end]}`",
                )
            self.expect(
                child,
                typed,
                allowed,
                f"`{node.operator}` compares " + ("numbers or strings" if len(allowed) == 2 else "values"),
            )
        if NULL not in (left.kind, right.kind) and left.kind != right.kind:
            raise self.fail(node, f"{self.quote(node)} compares {_article(left.kind)} with {_article(right.kind)}")
        if NULL in (left.kind, right.kind):
            return _Typed(BOOL, _all_null)
        compare = _COMPARE[node.operator]
        return _Typed(BOOL, lambda table: compare(left.evaluate(table), right.evaluate(table)))

    def _membership(self, node: Membership) -> _Typed:
        value = self.check(node.value)
        if isinstance(node.container, ListLiteral):
            tested = self._in_list(node, value, node.container)
        else:
            tested = self._in_column(node, value, node.container)
        if not node.negated:
            return tested
        return _Typed(BOOL, lambda table: pc.invert(tested.evaluate(table)))

    def _in_list(self, node: Membership, value: _Typed, container: ListLiteral) -> _Typed:
        kinds = [self._literal(item).kind for item in container.items]
        for item, kind in zip(container.items, kinds):
            if kind != kinds[0]:
                raise self.fail(
                    item,
                    f"a list holds one kind of value; {self.quote(item)} is {_article(kind)}, not {_article(kinds[0])}",
                )
        if kinds:
            self.expect(node.value, value, (kinds[0],), f"`in` tests against a list of {kinds[0]}s")
        elif value.kind.startswith("list<"):
            raise self.fail(node.value, f"{self.quote(node.value)} is a list; `in [...]` tests single values")
        if value.kind == NULL:
            return _Typed(BOOL, _all_null)
        # Numbers are tested as float64, whatever the column's integer type (exact below 2**53).
        member_type = _PLAIN_TYPES[kinds[0] if kinds else value.kind]
        members = pa.array([item.value for item in container.items], member_type)

        def evaluate(table: pa.Table) -> Value:
            tested = value.evaluate(table)
            if isinstance(tested, pa.Scalar):
                tested = pa.array([tested.as_py()] * table.num_rows, tested.type)
            found = pc.is_in(pc.cast(tested, member_type, safe=False), value_set=members)
            return _null_where(pc.is_null(tested), found, _NULL_BOOL)

        return _Typed(BOOL, evaluate)

    def _in_column(self, node: Membership, value: _Typed, container: ColumnRef) -> _Typed:
        lists = self.check(container)
        if not lists.kind.startswith("list<"):
            raise self.fail(
                container,
                f"`in` needs a list `[...]` or a list column on its right; `{container.name}` is {_article(lists.kind)}",
            )
        element = lists.kind[5:-1]
        self.expect(node.value, value, (element,), f"`{container.name}` holds {element}s")
        if value.kind == NULL:
            return _Typed(BOOL, _all_null)
        return _Typed(BOOL, lambda table: _contains(value.evaluate(table), lists.evaluate(table)))

    def _is_null(self, node: IsNull) -> _Typed:
        operand = self.check(node.operand)
        if node.negated:
            return _Typed(BOOL, lambda table: pc.invert(_is_null(operand.evaluate(table))))
        return _Typed(BOOL, lambda table: _is_null(operand.evaluate(table)))


def _article(kind: str) -> str:
    if kind.startswith("list<"):
        return f"a list of {kind[5:-1]}s"
    return {NUMBER: "a number", STRING: "a string", BOOL: "a condition (boolean)", NULL: "null"}[kind]


def _unknown_column(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean `{close[0]}`?" if close else ""
    shown = ", ".join(known[:40]) + (f", ... ({len(known)} in all)" if len(known) > 40 else "")
    return f"unknown column `{name}`{hint} (columns: {shown})"


@dataclass(frozen=True)
class Predicate:
    """A checked expression: which rows of a batch it selects."""

    text: str
    _evaluate: Evaluate = field(repr=False, compare=False)

    def mask(self, table: pa.Table) -> pa.BooleanArray:
        """True for the rows the predicate selects; a null result selects nothing."""
        result = self._evaluate(table)
        if isinstance(result, pa.Scalar):
            return pa.array(np.full(table.num_rows, bool(result.as_py())), pa.bool_())
        return pc.fill_null(result, False)


def compile_predicate(text: str, columns: Sequence[ColumnType]) -> Predicate:
    """Parse ``text`` and check it against ``columns``: every error surfaces here, before any data."""
    tree = parse(text)
    checker = _Checker(text, columns)
    typed = checker.check(tree)
    if typed.kind not in (BOOL, NULL):
        raise ExpressionError(
            text, tree.start, f"the expression is {_article(typed.kind)}, not a condition; compare it, e.g. `... > 0`"
        )
    return Predicate(text, typed.evaluate)
