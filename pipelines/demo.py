"""`corpusmill demo`: a small real corpus from this machine through every stage that exists.

The raw inputs come from ``curation.demo_corpus`` (documentation, translation
catalogs, source trees found on the machine); the stages run as the pipeline
``pipelines/demo.yaml``, so the demo is also the worked example of a pipeline.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.pipeline import load_pipeline, run_pipeline
from pipelines.report import summarize_output

DEMO_PIPELINE = Path(__file__).with_name("demo.yaml")


def run_demo(out: Path, overwrite: bool = False) -> None:
    from curation.demo_corpus import assemble_demo_inputs

    raw = out / "raw"
    if overwrite or not (raw / "inputs.json").exists():
        assemble_demo_inputs(raw)
    run_pipeline(DEMO_PIPELINE, str(out), overwrite)
    print("\n== demo summary")
    for step in load_pipeline(DEMO_PIPELINE)["steps"]:
        print(summarize_output(str(step["out"]).replace("{out}", str(out))))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="directory for the raw corpus and every stage's output")


def main(args: argparse.Namespace) -> None:
    run_demo(args.out, args.overwrite)
