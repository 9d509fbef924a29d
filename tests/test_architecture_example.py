"""The "adding a stage" example of docs/ARCHITECTURE.md runs as written: the doc cannot rot."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from corpusmill.curation.dataset import Dataset
from corpusmill.curation.executor import SerialExecutor
from corpusmill.pipelines.arguments import add_arguments, from_cli

DOC = Path(__file__).resolve().parents[1] / "docs" / "ARCHITECTURE.md"


def _example_module() -> types.ModuleType:
    block = re.search(r"```python\n# curation/length/stage.py\n(.*?)```", DOC.read_text(), re.S)
    assert block, "docs/ARCHITECTURE.md lost its worked example"
    module = types.ModuleType("length_stage_example")
    sys.modules[module.__name__] = module  # dataclasses resolve annotations through sys.modules
    exec(compile(block.group(1), str(DOC), "exec"), module.__dict__)
    return module


def test_the_documented_stage_runs_resumes_and_has_flags(tmp_path: Path) -> None:
    example = _example_module()
    (tmp_path / "in").mkdir()
    texts = ["one two three", "a much longer document with more than five words in it", "  "]
    table = pa.table({"id": ["a", "b", "c"], "text": texts, "source": ["s"] * 3})
    pq.write_table(table, tmp_path / "in" / "part.parquet")

    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser, example.LengthOptions)
    options = from_cli(example.LengthOptions, parser.parse_args([str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--min-words", "5"]))
    manifest = example.drop_short(options, executor=SerialExecutor())
    assert Dataset.open(tmp_path / "out").read_table()["id"].to_pylist() == ["b"]
    assert manifest.rows == 1
    again = example.drop_short(options, executor=SerialExecutor())
    assert again.rows == 1
    stats = (tmp_path / "out" / "stats.json").read_text()
    assert '"too_short"' in stats and '"empty_text"' in stats
