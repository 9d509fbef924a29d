"""No code execution from configuration, in every place a predicate is accepted (issue 15).

The escape attempts of test_security.py go through each door a user has: ``select --where``
on the command line, a pipeline step's ``where:``, ``--set STEP.where=``, a blend spec's
``where:``, and a blend spec's ``select:`` / ``exclude:`` mappings (whose keys are names and
whose values are only ever strings: they are compiled to the same language). Each is refused
as a user error, never a traceback (or, for a mapping's value, is data that matches only itself), and no
side effect happens.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from corpusmill.curation.blend.spec import BlendSpecError, Selector, load_spec, parse_spec
from corpusmill.pipelines.cli import main
from tests.select.test_security import ESCAPES, SENTINEL

SPECS = Path(__file__).resolve().parents[2] / "blend_specs"
ATTEMPTS = pytest.mark.parametrize("attempt", ESCAPES.values(), ids=ESCAPES.keys())


@contextlib.contextmanager
def evaluators_trapped() -> Iterator[None]:
    """Python's evaluators fail loudly if anything calls them while a spec is read and matched
    (a context, not a fixture: pytest's own failure report needs ``ast.parse`` afterwards)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("configuration reached a Python evaluator")

    with pytest.MonkeyPatch.context() as patch:
        for name in ("eval", "exec", "compile"):
            patch.setattr(builtins, name, refuse)
        patch.setattr(ast, "parse", refuse)
        yield


@pytest.fixture(autouse=True)
def no_sentinel() -> None:
    SENTINEL.unlink(missing_ok=True)
    yield
    assert not SENTINEL.exists(), "an escape ran"


def user_error(capsys: pytest.CaptureFixture) -> str:
    """The CLI's error for a user's mistake: a message (an expression's own adds a caret line under
    the text), never a traceback."""
    error = capsys.readouterr().err.strip()
    assert error.startswith("corpusmill: error: ") and "Traceback" not in error, error
    return error


def flow_string(text: str) -> str:
    """``text`` as one YAML scalar on one line (the escapes hold quotes, colons and newlines)."""
    return yaml.safe_dump(text, default_style='"', width=10**6).strip()


@ATTEMPTS
def test_select_where_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture, attempt: str) -> None:
    assert main(["select", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--where", attempt]) == 2
    assert user_error(capsys).startswith("corpusmill: error: --where: ")
    assert not (tmp_path / "out").exists()


def _select_pipeline(tmp_path: Path, where: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(f"steps:\n  - stage: select\n    input: /usr/share/doc\n    out: '{{out}}/s'\n    where: {where}\n")
    return path


@ATTEMPTS
def test_a_pipeline_steps_where_and_its_set_override(tmp_path: Path, capsys: pytest.CaptureFixture, attempt: str) -> None:
    path = _select_pipeline(tmp_path, flow_string(attempt))
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert f"{path}:2: step 1 (select): --where: " in user_error(capsys)
    path = _select_pipeline(tmp_path, "\"lines > 1\"")
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--set", f"select.where={attempt}"]) == 2
    assert "step 1 (select): " in user_error(capsys)
    assert not (tmp_path / "out").exists()


GROUPS = "phases:\n  p:\n    groups:\n      english:\n        weight: 1\n"


@ATTEMPTS
def test_a_blend_specs_where(attempt: str) -> None:
    with pytest.raises(BlendSpecError, match=r"^x\.yaml:6: phases\.p\.groups\.english\.where: "), evaluators_trapped():
        parse_spec(GROUPS + f"        where: {flow_string(attempt)}\n", "x.yaml")


@ATTEMPTS
@pytest.mark.parametrize("mapping", ["select", "exclude"])
def test_a_blend_specs_mapping_keys_are_names_only(attempt: str, mapping: str) -> None:
    problem = rf"^x\.yaml:6: phases\.p\.groups\.english\.{mapping}: .* is not a key a selection can name"
    with pytest.raises(BlendSpecError, match=problem), evaluators_trapped():
        parse_spec(GROUPS + f"        {mapping}: {{{flow_string(attempt)}: web}}\n", "x.yaml")


@ATTEMPTS
def test_a_blend_specs_mapping_values_are_only_strings(attempt: str) -> None:
    """An escape written as a value is a string: it selects the prefix whose key is exactly that text."""
    text = (
        GROUPS
        + f"        select: {{source: [{flow_string(attempt)}, web]}}\n"
        + f"        exclude: {{language: {flow_string(attempt)}}}\n"
    )
    with evaluators_trapped():
        selector = parse_spec(text, "x.yaml").phase(None).groups[0].select
        answers = [
            selector.matches({"source": attempt, "language": "en"}),
            selector.matches({"source": "web", "language": "en"}),
            selector.matches({"source": "web", "language": attempt}),
            selector.matches({"source": attempt + " ", "language": "en"}),
            selector.matches({"source": "os", "language": "en"}),
        ]
    assert answers == [True, True, False, False, False]


def _reference_matches(selector: Selector, keys: dict[str, str]) -> bool:
    """The blend selection as it was decided before issue 15, for specs without `where`: plain value sets."""
    include_ok = all(keys.get(key) in values for key, values in selector.include.items())
    return include_ok and not any(keys.get(key) in values for key, values in selector.exclude.items())


def test_shipped_blends_select_exactly_as_the_value_sets_did() -> None:
    """Every combination of the keys the shipped specs use, and keys a prefix lacks: same answer."""
    values = {
        "category": ["english", "multilingual", "code", "unknown", None],
        "source": ["alignment", "web", "wiki", None],
        "language": ["en", "de", None],
        "quality_bucket": ["high", "low", None],
    }
    specs = [load_spec(path) for path in sorted(SPECS.glob("*.yaml"))]
    groups = [group for spec in specs for phase in spec.phases.values() for group in phase.groups]
    assert groups and not any(group.select.where for group in groups), "the shipped specs use mappings only"
    checked, selected = 0, 0
    for combination in itertools.product(*values.values()):
        keys = {key: value for key, value in zip(values, combination) if value is not None}
        for group in groups:
            assert group.select.matches(keys) == _reference_matches(group.select, keys), (group.name, keys)
            checked, selected = checked + 1, selected + _reference_matches(group.select, keys)
    assert checked == len(groups) * 5 * 4 * 3 * 3 and 0 < selected < checked
