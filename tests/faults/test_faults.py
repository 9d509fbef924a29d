"""Fault injection (issue 15), the CI-sized slice of ``benchmarks/faults.py``.

Every stage of the demo pipeline (but the training run) runs once undisturbed on a small
multi-shard demo corpus from this machine; then each gets a few seeded faults (SIGKILL of the
driver or its process group, ENOSPC / EIO at a random write, a concurrent second run) and is
re-run: the output must be byte-identical to the undisturbed one and no document may be lost.
The benchmark runs many more cases, and Ray worker kills; docs/RELIABILITY.md records them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.faults import KILL_ONLY_STAGES, Reference, load_or_build_reference, run_case, small_corpus

DOCS_PER_KIND = 12
# Which fault each stage gets: every kind appears, rotated over the stages (seeded, so the same each run).
ROTATION = ("driver", "enospc", "group", "concurrent", "eio")


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], list[Reference]]:
    work = tmp_path_factory.mktemp("faults")
    inputs = small_corpus(work, DOCS_PER_KIND)
    return work, inputs, load_or_build_reference(work, inputs)


def cases() -> list[tuple[int, str]]:
    """(step index, kind): one fault per step, kinds rotated; kill-only stages get a driver kill."""
    from corpusmill.pipelines.pipeline import load_pipeline

    from benchmarks.faults import DEMO_PIPELINE, SKIPPED_STAGES

    stages = [s.stage for s in load_pipeline(DEMO_PIPELINE).steps if s.stage not in SKIPPED_STAGES]
    return [
        (index, "driver" if stage in KILL_ONLY_STAGES else ROTATION[index % len(ROTATION)])
        for index, stage in enumerate(stages)
    ]


def test_the_reference_is_a_multi_shard_dataset(harness: tuple[Path, list[str], list[Reference]]) -> None:
    from corpusmill.curation.dataset import Dataset

    work, _, references = harness
    assert len(Dataset.open(work / "reference" / "ingested").shards) > 1
    assert all(ref.write_events > 0 for ref in references)


@pytest.mark.parametrize(("index", "kind"), cases())
def test_a_faulted_stage_reruns_to_the_undisturbed_output(
    harness: tuple[Path, list[str], list[Reference]], index: int, kind: str
) -> None:
    work, inputs, references = harness
    result = run_case(work, references[index], inputs, kind, seed=0)
    assert result.differences == [] and result.identical, result
    assert result.documents_lost == 0, result
    assert result.one_line_error is not False, result  # a disk error or a busy output is one line, no traceback


HOLD_LOCK = """
import sys
from pathlib import Path
from corpusmill.curation import output_lock
out = Path(sys.argv[1])
output_lock.acquire(out / "_progress", out, "another-attempt", "blend resolve")
print("locked", flush=True)
sys.stdin.read()
"""


def test_blend_resolve_refuses_an_output_another_run_is_writing(
    harness: tuple[Path, list[str], list[Reference]],
) -> None:
    """Found by the harness: two blend resolves into one --out both wrote (no lock), so settings could mix."""
    import subprocess
    import sys

    from benchmarks.faults import finish, prepare_case, start, step_command

    work, inputs, references = harness
    blend = next(ref for ref in references if ref.step.stage == "blend resolve")
    root = prepare_case(work, "blend-lock", blend.step)
    out = root / blend.step.out
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    log = work / "blend-lock.log"
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert finish(start(step_command(root, blend.step, inputs), log)) == 2
        text = log.read_text()
        assert "being written by another corpusmill run" in text and "Traceback" not in text
        assert not (out / "trainer.json").exists()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
    assert finish(start(step_command(root, blend.step, inputs), log)) == 0
    assert (out / "trainer.json").exists()
