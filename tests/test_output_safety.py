"""--out under misuse and concurrency (issue 15): never delete what corpusmill did not make, one
writer per output, and every write failure is one line with the fix.

In-process (SerialExecutor) where the point is the stage's logic; a real second process where
the point is that another process holds the output.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from corpusmill.curation import output_lock
from corpusmill.curation.dataset import Dataset, ShardWriter
from corpusmill.curation.dedup.exact_stage import DedupExactOptions, dedup_exact
from corpusmill.curation.executor import SerialExecutor
from corpusmill.curation.ingest.stage import IngestOptions, ingest
from corpusmill.curation.output_lock import OutputBusyError
from corpusmill.curation.stage import OutputWriteError, StageRun
from corpusmill.pipelines.cli import main


def write_jsonl(path: Path, texts: list[str], **fields: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": text, **fields}) + "\n" for text in texts))
    return path


def ingest_to(inputs: list[str], out: Path, overwrite: bool = False) -> None:
    ingest(IngestOptions(inputs=tuple(inputs), out=str(out)), executor=SerialExecutor(), overwrite=overwrite)


def one_line_error(capsys: pytest.CaptureFixture) -> str:
    error = capsys.readouterr().err.strip()
    assert error and "\n" not in error and "Traceback" not in error, error
    return error


def listing(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- 1. --overwrite removes only corpusmill's own outputs, never an input ---------------------------------------


def test_overwrite_refuses_an_out_that_is_or_holds_its_input(
    tmp_path: Path, capsys: pytest.CaptureFixture, stdlib_texts: list[str]
) -> None:
    selfdel = tmp_path / "selfdel"
    write_jsonl(selfdel / "a.jsonl", stdlib_texts[:3])
    before = listing(selfdel)
    assert main(["ingest", str(selfdel), "--out", str(selfdel), "--overwrite"]) == 2
    assert "is or contains the input" in one_line_error(capsys)
    assert main(["ingest", str(selfdel / "a.jsonl"), "--out", str(tmp_path), "--overwrite"]) == 2
    assert "is or contains the input" in one_line_error(capsys)
    assert main(["ingest", str(selfdel), "--out", str(selfdel / "out")]) == 2
    assert "lies inside the input folder" in one_line_error(capsys)
    assert listing(selfdel) == before


def test_overwrite_refuses_a_dataset_stage_writing_over_its_input(
    tmp_path: Path, capsys: pytest.CaptureFixture, stdlib_texts: list[str]
) -> None:
    ingest_to([str(write_jsonl(tmp_path / "raw" / "web.jsonl", stdlib_texts[:4]))], tmp_path / "ingested")
    before = listing(tmp_path / "ingested")
    assert main(["dedup", "exact", str(tmp_path / "ingested"), "--out", str(tmp_path / "ingested"), "--overwrite"]) == 2
    assert "is or contains the input" in one_line_error(capsys)
    assert listing(tmp_path / "ingested") == before
    assert Dataset.open(tmp_path / "ingested").num_rows == 4


def test_overwrite_only_deletes_a_directory_corpusmill_made(
    tmp_path: Path, capsys: pytest.CaptureFixture, stdlib_texts: list[str]
) -> None:
    source = write_jsonl(tmp_path / "raw" / "web.jsonl", stdlib_texts[:2])
    foreign = tmp_path / "home"
    (foreign / "notes.txt").parent.mkdir()
    (foreign / "notes.txt").write_text("my own notes")
    assert main(["ingest", str(source), "--out", str(foreign), "--overwrite"]) == 2
    assert "--overwrite only deletes directories corpusmill made" in one_line_error(capsys)
    assert (foreign / "notes.txt").read_text() == "my own notes"
    ingest_to([str(source)], tmp_path / "out")
    write_jsonl(source, stdlib_texts[2:5])
    ingest_to([str(source)], tmp_path / "out", overwrite=True)  # our own output: redone
    assert sorted(d["text"] for d in Dataset.open(tmp_path / "out").read_table().to_pylist()) == sorted(
        stdlib_texts[2:5]
    )


def test_out_naming_an_existing_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, stdlib_texts: list[str]
) -> None:
    source = write_jsonl(tmp_path / "web.jsonl", stdlib_texts[:1])
    (tmp_path / "taken").write_text("a file")
    assert main(["ingest", str(source), "--out", str(tmp_path / "taken")]) == 2
    assert "is an existing file" in one_line_error(capsys)
    assert (tmp_path / "taken").read_text() == "a file"


# --- 2. one writer per output ------------------------------------------------------------------------------------

HOLD_LOCK = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from corpusmill.curation import output_lock
    out = Path(sys.argv[1])
    output_lock.acquire(out / "_progress", out, "another-attempt", "dedup_exact")
    print("locked", flush=True)
    sys.stdin.read()
    """
)


def test_a_second_run_into_a_locked_output_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture, stdlib_texts: list[str]
) -> None:
    texts = stdlib_texts[:6]
    ingest_to([str(write_jsonl(tmp_path / "raw" / "web.jsonl", texts + texts[:2]))], tmp_path / "in")
    out = tmp_path / "dedup"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputBusyError, match=f"being written by another corpusmill run .*pid {holder.pid}"):
            dedup_exact(DedupExactOptions(input=str(tmp_path / "in"), out=str(out)), executor=SerialExecutor())
        assert main(["dedup", "exact", str(tmp_path / "in"), "--out", str(out)]) == 2
        assert "being written by another corpusmill run" in one_line_error(capsys)
        assert not (out / "manifest.json").exists()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
    manifest = dedup_exact(DedupExactOptions(input=str(tmp_path / "in"), out=str(out)), executor=SerialExecutor())
    assert manifest.rows == 6  # the holder is gone (its lock went with it): the run proceeds, and is right


def test_a_unit_of_a_superseded_attempt_records_nothing(tmp_path: Path) -> None:
    def unit_fn(unit: dict[str, Any], run: StageRun) -> dict[str, Any]:
        return {"unit_id": unit["unit_id"]}

    first = StageRun(tmp_path / "out", "probe", {"setting": 1})
    first.claim(SerialExecutor())
    second = StageRun(tmp_path / "out", "probe", {"setting": 1})
    second.claim(SerialExecutor())  # took the output over (the first driver's lock is gone)
    with pytest.raises(OutputBusyError, match="taken over by another corpusmill run"):
        first.run_phase("work", [{"unit_id": "a"}], unit_fn, SerialExecutor())
    assert not (tmp_path / "out" / "_progress" / "work" / "a.json").exists()
    assert second.run_phase("work", [{"unit_id": "a"}], unit_fn, SerialExecutor()) == [{"unit_id": "a"}]
    output_lock.release(second.progress_dir)


def test_two_writers_of_one_shard_never_share_a_temporary_file(tmp_path: Path, stdlib_texts: list[str]) -> None:
    tables = [pa.table({"id": [str(i)], "text": [text], "source": ["s"]}) for i, text in enumerate(stdlib_texts[:2])]
    writers = [ShardWriter(tmp_path, "shards", "u00000") for _ in tables]
    for writer, table in zip(writers, tables):
        writer.write(table)
    [shard_a], [shard_b] = (writer.close() for writer in writers)
    assert shard_a.name == shard_b.name  # the same final name: the later rename wins, whole
    assert pq.read_table(tmp_path / shard_b.name).equals(tables[1])
    assert not [p for p in (tmp_path / "shards").iterdir() if ".tmp-" in p.name]


# --- 14. write failures and bad settings are one line ------------------------------------------------------------


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_full_or_read_only_output_is_one_line_and_a_rerun_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, stdlib_texts: list[str]
) -> None:
    sources = [str(write_jsonl(tmp_path / "raw" / f"{i}.jsonl", stdlib_texts[i * 3 : i * 3 + 3])) for i in range(3)]
    ingest_to(sources, tmp_path / "reference")
    real_write = pq.ParquetWriter.write_table
    calls = {"n": 0}

    def failing_write(self: pq.ParquetWriter, table: pa.Table, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # the third shard: two units are done, the third fails
            raise OSError(code, f"Error writing bytes to file. Detail: [errno {code}] {errno.errorcode[code]}")
        real_write(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", failing_write)
    with pytest.raises(OutputWriteError) as raised:
        ingest_to(sources, tmp_path / "out")
    message = str(raised.value)
    assert f"cannot write to {tmp_path / 'out'}" in message and "run the same command again to resume" in message
    assert "\n" not in message
    monkeypatch.setattr(pq.ParquetWriter, "write_table", real_write)
    ingest_to(sources, tmp_path / "out")
    assert Dataset.open(tmp_path / "out").read_table().equals(Dataset.open(tmp_path / "reference").read_table())


def test_a_read_only_output_on_the_driver_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, stdlib_texts: list[str]
) -> None:
    source = write_jsonl(tmp_path / "web.jsonl", stdlib_texts[:1])

    def read_only(path: Path, data: Any) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(output_lock, "write_json_atomic", read_only)
    assert main(["ingest", str(source), "--out", str(tmp_path / "out")]) == 2
    error = one_line_error(capsys)
    assert "Read-only file system" in error and "make it writable" in error


def test_a_negative_partition_count_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["dedup", "exact", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--partitions", "-3"]) == 2
    assert "--partitions must be a positive number" in one_line_error(capsys)
    assert main(["dedup", "fuzzy", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--partitions", "0"]) == 2
    assert "--partitions must be a positive number" in one_line_error(capsys)


def test_a_manifest_that_is_not_json_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, stdlib_texts: list[str]
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "manifest.json").write_text('{"schema_version": 1, "shards": [')
    assert main(["dedup", "exact", str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 2
    error = one_line_error(capsys)
    assert str(tmp_path / "in" / "manifest.json") in error and "not valid JSON" in error
    source = write_jsonl(tmp_path / "web.jsonl", stdlib_texts[:2])
    ingest_to([str(source)], tmp_path / "ingested")
    (tmp_path / "ingested" / "manifest.json").write_text("garbage")
    assert main(["ingest", str(source), "--out", str(tmp_path / "ingested")]) == 2
    assert "--overwrite" in one_line_error(capsys)
    ingest_to([str(source)], tmp_path / "ingested", overwrite=True)
    assert Dataset.open(tmp_path / "ingested").num_rows == 2
