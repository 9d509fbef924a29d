"""Write failures the fault harness found as tracebacks (issue 15): an I/O error (EIO) under --out, and a
full disk under the pipeline's own run record, are one line with the fix, like ENOSPC in a stage."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from corpusmill.curation.dataset import Dataset
from corpusmill.curation.executor import SerialExecutor
from corpusmill.curation.ingest.stage import IngestOptions, ingest
from corpusmill.curation.stage import OutputWriteError, explain_write_error
from corpusmill.pipelines import runner
from corpusmill.pipelines.cli import main


def write_jsonl(path: Path, texts: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    return path


def test_an_io_error_under_out_is_one_line_and_a_rerun_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stdlib_texts: list[str]
) -> None:
    sources = tuple(
        str(write_jsonl(tmp_path / "raw" / f"{i}.jsonl", stdlib_texts[i * 2 : i * 2 + 2])) for i in range(3)
    )
    out = tmp_path / "out"
    real_replace = os.replace
    calls = {"n": 0}

    def failing_replace(source: Any, destination: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 6:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(destination))
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OutputWriteError) as raised:
        ingest(IngestOptions(inputs=sources, out=str(out)), executor=SerialExecutor())
    message = str(raised.value)
    assert f"cannot write to {out}: Input/output error" in message and "check the disk" in message
    assert "\n" not in message
    monkeypatch.setattr(os, "replace", real_replace)
    manifest = ingest(IngestOptions(inputs=sources, out=str(out)), executor=SerialExecutor())
    assert manifest.rows == 6 and Dataset.open(out).num_rows == 6


def test_an_io_error_reading_elsewhere_is_not_called_an_output_error(tmp_path: Path) -> None:
    error = OSError(errno.EIO, os.strerror(errno.EIO), str(tmp_path / "inputs" / "web.jsonl"))
    assert explain_write_error(error, tmp_path / "out") is None
    assert explain_write_error(OSError(errno.ENOENT, "No such file", str(tmp_path / "out" / "x"))) is None


def test_a_full_disk_under_the_run_record_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, stdlib_texts: list[str]
) -> None:
    source = write_jsonl(tmp_path / "raw" / "web.jsonl", stdlib_texts[:2])
    pipeline = tmp_path / "one.yaml"
    pipeline.write_text(
        f"name: one\nsteps:\n  - stage: ingest\n    inputs: ['{source}']\n    out: '{{out}}/ingested'\n"
    )
    real_write = runner.write_json_atomic

    def full_disk(path: Path, data: Any) -> None:
        if path.name == runner.RUN_RECORD:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, data)

    monkeypatch.setattr(runner, "write_json_atomic", full_disk)
    assert main(["run", str(pipeline), "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "Traceback" not in error, error
    assert runner.RUN_RECORD in error and "No space left on device" in error and "free some space" in error
