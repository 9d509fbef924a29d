"""Issue 15, defect 14 (configuration cases): a hostile or broken pipeline YAML or blend spec is one line.

Every case runs the real CLI (``corpusmill run`` / ``corpusmill blend resolve``): exit status
2, one line that names the file (never PyYAML's ``<unicode string>``), no traceback, nothing
run and no object built from a tag.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from corpusmill.pipelines.cli import main

SENTINEL = "/tmp/corpusmill-config-escape-sentinel"
STEP = "steps:\n  - stage: dedup exact\n    input: /usr/share/doc\n    out: '{out}/x'\n"
BOMB = "variables:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9)
)


def one_line_error(capsys: pytest.CaptureFixture) -> str:
    error = capsys.readouterr().err.strip()
    assert error.startswith("corpusmill: error: ") and "\n" not in error, error
    assert "Traceback" not in error and "<unicode string>" not in error, error
    return error.removeprefix("corpusmill: error: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps:\n  - stage: ingest\n    inputs: [a\n", ":4:1: not valid YAML: while parsing a flow sequence, expected ','"),
        ("steps:\n\t- stage: ingest\n", ":2:1: not valid YAML: while scanning for the next token, found character '\\t'"),
        ("steps: !!python/object:os.system {}\n", ":1:8: the tag !!python/object:os.system is refused"),
        (f"steps:\n  - !!python/object/apply:os.system ['touch {SENTINEL}']\n", ":2:5: the tag !!python/object/apply:os.system is refused"),
        ("steps: [!!python/name:os.system ]\n", ":1:9: the tag !!python/name:os.system is refused"),
        (STEP + "    partitions: !!python/object/new:int [3]\n", ":5:17: the tag !!python/object/new:int is refused"),
        ("name: x\n", ": missing `steps` (a list of steps, each `- stage: NAME` and its keys)"),
        ("", ": expected a mapping with a non-empty `steps` list, got an empty file"),
        ("- stage: ingest\n", ": expected a mapping with a non-empty `steps` list, got a list"),
        ("steps: {stage: ingest}\n", ":1: `steps` must be a non-empty list"),
        ("steps: []\n", ":1: `steps` must be a non-empty list"),
        ("steps:\n  - stage: run\n    pipeline: '{here}/p.yaml'\n    out: '{out}/again'\n", ":2: step 1 (run): a pipeline step cannot run `run`"),
        ("steps:\n  - stage: demo\n    out: '{out}/demo'\n", ":2: step 1 (demo): a pipeline step cannot run `demo`"),
        ("steps:\n  - stage: ingest\n    inputs: " + "[" * 5000 + "]" * 5000 + "\n", ":3:74: nested more than 64 levels deep"),
        (BOMB + "steps:\n  - stage: ingest\n    inputs: '{a8}'\n    out: o\n", ": expands to more than 1,000,000 values"),
        ("variables:\n  a: &a [*a]\n" + STEP, ":2:6: an alias (*name) refers to a value that holds it"),
        (STEP + "    out: '{out}/y'\n", ":5: key 'out' appears twice in the same mapping (line 4)"),
    ],
)  # fmt: skip
def test_a_broken_or_hostile_pipeline_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture, text: str, message: str
) -> None:
    Path(SENTINEL).unlink(missing_ok=True)
    path = tmp_path / "p.yaml"
    path.write_text(text)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert one_line_error(capsys).startswith(f"{path}{message}")
    assert not (tmp_path / "out").exists() and not Path(SENTINEL).exists()


def test_a_pipeline_that_is_not_text_or_not_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00steps")
    assert main(["run", str(binary), "--out", str(tmp_path / "out")]) == 2
    assert one_line_error(capsys) == f"{binary}: not UTF-8 text (byte 0); a pipeline is a YAML text file"
    assert main(["run", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert one_line_error(capsys) == f"{tmp_path}: cannot read the pipeline: Is a directory"


def test_a_set_value_that_is_absurd_yaml_is_taken_as_text(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(STEP)
    deep = "[" * 5000
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--set", f"dedup_exact.partitions={deep}"]) == 2
    assert "`partitions` must be an integer" in one_line_error(capsys)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("phases: !!python/object/apply:os.system ['true']\n", ":1:9: the tag !!python/object/apply:os.system is refused"),
        ("phases:\n  p: {groups: {a: {weight: 1}}\n", ":3:1: not valid YAML: while parsing a flow mapping"),
        ("phases:\n  p:\n    groups:\n      a: {weight: 1, weight: 2}\n", ":4: key 'weight' appears twice in the same mapping (line 4)"),
        ("phases: " + "{a: " * 100 + "1" + "}" * 100 + "\n", ":1:261: nested more than 64 levels deep"),
        (BOMB.replace("variables", "description") + "phases: {p: {groups: {a: {weight: 1}}}}\n", ": expands to more than"),
    ],
)  # fmt: skip
def test_a_broken_or_hostile_blend_spec_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture, text: str, message: str
) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    assert main(["blend", "resolve", str(path), "--shards", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert one_line_error(capsys).startswith(f"{path}{message}")
    path.write_bytes(b"phases:\n  \xff\n")
    assert main(["blend", "resolve", str(path), "--shards", str(tmp_path / "none")]) == 2
    assert one_line_error(capsys) == f"{path}: not UTF-8 text (byte 10); a blend spec is a YAML text file"
