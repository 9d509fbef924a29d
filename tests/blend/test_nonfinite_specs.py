"""Issue 15, defect 12: NaN, infinity and a tokenize output given twice never reach a blend's outputs.

Each case runs the real CLI (``corpusmill blend resolve``) over real indexed shards: the
answer is one line naming the spec's file, line and key (or the flag), exit status 2, and
nothing written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from corpusmill.curation.blend.spec import BlendSpecError, parse_spec, parse_token_count
from corpusmill.pipelines.cli import main
from tests.blend.test_outputs import component, write_shards

SPEC = """\
seq_length: {seq_length}
max_epochs: {{default: {cap}}}
phases:
  pretrain:
    tokens: {tokens}
    groups:
      english: {{weight: {weight}}}
      code: {{weight: 30}}
      multilingual: {{weight: 10, within: temperature, temperature: {temperature}}}
"""
GOOD = {"seq_length": 4096, "cap": 4, "tokens": "1M", "weight": 70, "temperature": 3.3}


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    return write_shards(
        tmp_path / "tokenized",
        "a" * 64,
        [
            (component("english", "en", "web"), [4000] * 30),
            (component("code", "python", "stdlib"), [5000] * 12),
            (component("multilingual", "de", "catalogs"), [3000] * 10),
        ],
    )


def resolve_cli(tmp_path: Path, shards: Path, capsys: pytest.CaptureFixture, *extra: str, **spec: object) -> str:
    """Run `blend resolve` on a spec with ``spec`` changed; its one-line error (and check nothing was written)."""
    path = tmp_path / "hostile.yaml"
    path.write_text(SPEC.format(**{**GOOD, **spec}))
    out = tmp_path / "blend"
    assert main(["blend", "resolve", str(path), "--shards", str(shards), "--out", str(out), *extra]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("corpusmill: error: ") and "\n" not in error and "Traceback" not in error, error
    assert not out.exists(), "nothing is written"
    return error.removeprefix("corpusmill: error: ")


def test_the_fixture_spec_resolves(tmp_path: Path, shards: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(SPEC.format(**GOOD))
    assert main(["blend", "resolve", str(path), "--shards", str(shards), "--out", str(tmp_path / "blend")]) == 0
    weights = (tmp_path / "blend" / "data_path.txt").read_text().split()[::2]
    assert [float(w) for w in weights] == pytest.approx([0.63636363636, 0.27272727272, 0.09090909090])


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("weight", ".nan", ":7: phases.pretrain.groups.english.weight: must be a finite number, got .nan"),
        ("weight", ".inf", ":7: phases.pretrain.groups.english.weight: must be a finite number, got .inf"),
        ("weight", "1.0e+400", ":7: phases.pretrain.groups.english.weight: must be a finite number, got .inf"),
        ("temperature", ".inf", ":9: phases.pretrain.groups.multilingual.temperature: must be a finite number, got .inf"),
        ("cap", ".nan", ":2: max_epochs.default: must be a finite number, got .nan"),
        ("seq_length", ".inf", ":1: spec.seq_length: must be a finite number, got .inf"),
        ("seq_length", ".nan", ":1: spec.seq_length: must be a finite number, got .nan"),
        ("seq_length", "4096.5", ":1: spec.seq_length: must be a whole number, got 4096.5"),
        ("tokens", ".inf", ":5: phases.pretrain.tokens: .inf: a token count must be a finite number"),
        ("tokens", "1e400", ":5: phases.pretrain.tokens: '1e400': a token count must be a finite number"),
        ("tokens", "-.inf", ":5: phases.pretrain.tokens: -.inf: a token count must be a finite number"),
    ],
)
def test_nan_and_infinity_in_a_spec_are_one_line_naming_file_line_and_key(
    tmp_path: Path, shards: Path, capsys: pytest.CaptureFixture, key: str, value: str, message: str
) -> None:
    error = resolve_cli(tmp_path, shards, capsys, **{key: value})
    assert error == f"{tmp_path / 'hostile.yaml'}{message}"


@pytest.mark.parametrize("value", ["0", "-4096"])
def test_a_nonpositive_seq_length_flag_is_one_line(
    tmp_path: Path, shards: Path, capsys: pytest.CaptureFixture, value: str
) -> None:
    error = resolve_cli(tmp_path, shards, capsys, "--seq-length", value)
    assert error == f"--seq-length {value}: must be at least 1 (tokens per training sequence)"


def test_an_infinite_tokens_flag_is_an_argument_error(shards: Path, capsys: pytest.CaptureFixture) -> None:
    spec = str(Path(__file__).resolve().parents[2] / "blend_specs" / "nemotron4.yaml")
    with pytest.raises(SystemExit) as exit_status:
        main(["blend", "resolve", spec, "--shards", str(shards), "--tokens", "1e400"])
    assert exit_status.value.code == 2
    assert "argument --tokens: '1e400': a token count must be a finite number" in capsys.readouterr().err


def test_the_same_shards_given_twice_are_refused(tmp_path: Path, shards: Path, capsys: pytest.CaptureFixture) -> None:
    """Given twice, the trainer's weights came out halved (summing to 0.5) while data_path.txt summed them."""
    error = resolve_cli(tmp_path, shards, capsys, "--shards", str(shards))
    assert f"--shards {shards}" in error and "given twice" in error, error
    same_by_another_name = tmp_path / "again"
    same_by_another_name.symlink_to(shards)
    error = resolve_cli(tmp_path, shards, capsys, "--shards", str(same_by_another_name))
    assert "given twice" in error and str(same_by_another_name) in error, error


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "1e400", "inf", "nan"])
def test_token_counts_are_finite(value: object) -> None:
    with pytest.raises(ValueError):
        parse_token_count(value)


def test_a_finite_spec_still_parses_to_the_same_numbers() -> None:
    spec = parse_spec(SPEC.format(**GOOD), "x.yaml")
    assert (spec.seq_length, spec.default_max_epochs, spec.phase(None).tokens) == (4096, 4.0, 1e6)
    with pytest.raises(BlendSpecError, match="must be >= 1, got 0"):
        parse_spec(SPEC.format(**{**GOOD, "seq_length": 0}), "x.yaml")


def test_a_trainer_blend_with_nan_weights_is_refused(tmp_path: Path, shards: Path) -> None:
    """A trainer.json written before the spec checks (weights `nan`) is refused, not trained on."""
    import json

    from corpusmill.curation.blend.inventory import BlendError
    from corpusmill.curation.blend.trainer_blend import read_trainer_blend

    path = tmp_path / "good.yaml"
    path.write_text(SPEC.format(**GOOD))
    assert main(["blend", "resolve", str(path), "--shards", str(shards), "--out", str(tmp_path / "blend")]) == 0
    trainer_json = tmp_path / "blend" / "trainer.json"
    stored = json.loads(trainer_json.read_text())
    for entry in stored["splits"]["train"]:
        entry["weight"] = float("nan")
    trainer_json.write_text(json.dumps(stored))
    with pytest.raises(BlendError, match="train weights sum to nan, not 1"):
        read_trainer_blend(trainer_json)
