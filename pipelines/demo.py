"""`corpusmill demo`: a small real corpus from this machine through every stage that exists.

The raw inputs come from ``pipelines.demo_corpus`` (documentation, translation
catalogs, source trees found on the machine); the stages are the whole recipe,
``pipelines/nemotron4.yaml`` with its ``demo`` profile (exactly ``corpusmill run
pipelines/nemotron4.yaml --profile demo --set inputs=[...]``), so there is one copy of the
recipe and the demo is its worked example.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corpusmill.curation.command import DRIVER, StageCommand
from corpusmill.curation.dataset import STATS_FILE
from corpusmill.curation.executor import Executor
from corpusmill.curation.options import option
from corpusmill.pipelines.report import summarize_output
from corpusmill.pipelines.runner import run_pipeline

DEMO_PIPELINE = Path(__file__).with_name("nemotron4.yaml")
DEMO_PROFILE = "demo"
REPORT_FILE = "report.html"


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    """`corpusmill demo --out DIR`."""

    out: str = option(help="directory for the raw corpus, every stage's output and report.html")


def run_demo(options: DemoOptions, *, executor: Executor, overwrite: bool = False) -> None:
    from corpusmill.pipelines.demo_corpus import assemble_demo_inputs
    from corpusmill.pipelines.run_report import write_report

    out = Path(options.out)
    raw = out / "raw"
    if raw.exists():
        shutil.rmtree(raw)
    demo_inputs = assemble_demo_inputs(raw)
    print(describe_inputs(demo_inputs))
    inputs = [f"{path}={source}" for path, source in demo_inputs.ingest_inputs]
    run = run_pipeline(
        DEMO_PIPELINE, str(out), executor, overwrite, profile=DEMO_PROFILE, variables={"inputs": inputs}
    )
    print("\n== demo summary")
    for planned in run.plan.steps:
        step_out = Path(planned.options.out)
        if (step_out / STATS_FILE).exists():
            print(summarize_output(step_out))
        if planned.command.name == "classify":
            from corpusmill.curation.classify.stage import format_label_mix, label_mix

            print(format_label_mix(label_mix(step_out)))
    report = write_report(out, out / REPORT_FILE)
    print(f"report: {report} (open it in a browser)")


def describe_inputs(demo_inputs: Any) -> str:
    kinds = ", ".join(f"{kind} {count:,}" for kind, count in demo_inputs.docs_per_kind.items())
    return (
        f"== demo corpus in {demo_inputs.raw_dir}: {kinds} documents, {demo_inputs.total_bytes / 1e6:.1f} MB\n"
        f"   languages: {', '.join(demo_inputs.languages) or 'none found'}; "
        f"code: {', '.join(demo_inputs.code_languages) or 'none found'}"
    )


COMMANDS = [
    StageCommand(
        ("demo",),
        "assemble a small real corpus from this machine, run every stage on it and write report.html",
        DemoOptions,
        run_demo,
        kind=DRIVER,
    )
]
