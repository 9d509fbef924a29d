"""Building the CLI's parser loads no heavy library: every command pays for the parser's imports.

The parser imports every stage module for its options, so a module-level import of
numba (the fuzzy and blend kernels), pandas (pulled in by ``pa.scalar``), torch or Ray
would cost every command, `ingest` of twelve files included, their memory and start-up
(docs/BENCHMARKS.md, "Ray fixed cost"). Each stage loads them where its work runs.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "numba", "scipy", "pandas", "ray", "datatrove", "fasttext", "kenlm", "spacy", "polars", "datasketch")

BUILD_PARSER_AND_LIST = f"""
import json, sys
from corpusmill.pipelines.cli import parse
try:
    parse(["ingest", "--help"])
except SystemExit:
    pass
from corpusmill.pipelines.cli import commands
print(json.dumps({{"commands": len(commands()), "heavy": sorted(set({HEAVY!r}) & set(sys.modules))}}))
"""


def test_the_parser_of_every_command_loads_no_heavy_library() -> None:
    result = subprocess.run(
        [sys.executable, "-c", BUILD_PARSER_AND_LIST], capture_output=True, text=True, timeout=120, check=True
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["commands"] > 20  # the parser was built from every command module
    assert report["heavy"] == []
