"""A phase of one unit runs in the CLI's process without starting Ray; two or more start it; same output either way."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from corpusmill.curation.progress import SilentProgress
from corpusmill.pipelines.execution import RayExecutor, run_inline

# Runs the CLI in a fresh interpreter, then says whether Ray was ever imported there.
RUN_AND_PROBE = (
    "import sys; from corpusmill.pipelines.cli import main; rc = main(sys.argv[1:]); "
    "print('ray imported:', 'ray' in sys.modules); sys.exit(rc)"
)
LICENSES = Path("/usr/share/common-licenses")


def _ingest(inputs: list[Path], out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    command = [sys.executable, "-c", RUN_AND_PROBE, "ingest", *map(str, inputs), "--out", str(out), "--num-cpus", "2"]
    return subprocess.run([*command, *extra], env=env, capture_output=True, text=True, timeout=300)


def _digests(out: Path) -> dict[str, str]:
    return {
        str(path.relative_to(out)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(out.rglob("*"))
        if path.is_file()
        and path.suffix in (".parquet", ".json")
        and path.name not in ("manifest.json", "owner.json")  # a timestamp; the lock names its process
    }


def test_a_one_unit_command_never_starts_ray_and_writes_what_ray_writes(tmp_path: Path) -> None:
    source = tmp_path / "docs.jsonl"
    texts = [(LICENSES / name).read_text() for name in sorted(os.listdir(LICENSES))[:12]]
    source.write_text("".join(json.dumps({"id": str(i), "text": text}) + "\n" for i, text in enumerate(texts)))
    inline = _ingest([source], tmp_path / "inline")
    assert inline.returncode == 0, inline.stderr[-3000:]
    assert "ray imported: False" in inline.stdout and "ray: started" not in inline.stderr
    on_ray = _ingest([source], tmp_path / "ray", "--always-ray")
    assert on_ray.returncode == 0, on_ray.stderr[-3000:]
    assert "ray imported: True" in on_ray.stdout and "ray: started an embedded Ray" in on_ray.stderr
    assert _digests(tmp_path / "inline") == _digests(tmp_path / "ray") != {}
    stats = json.loads((tmp_path / "inline" / "stats.json").read_text())
    assert stats["out"]["docs"] == 12


def test_a_phase_of_two_units_starts_ray(tmp_path: Path) -> None:
    sources = []
    for name in ("a", "b"):
        sources.append(tmp_path / f"{name}.jsonl")
        sources[-1].write_text(json.dumps({"id": name, "text": f"document {name} " * 20}) + "\n")
    run = _ingest(sources, tmp_path / "out")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "ray: started an embedded Ray" in run.stderr


def test_run_inline_round_trips_through_json_like_a_ray_task() -> None:
    seen = []

    class Recording(SilentProgress):
        def unit_finished(self, label: str, result: dict) -> None:
            seen.append((label, result))

    result = run_inline(
        {"unit_id": "u0", "rows": (1, 2)}, lambda unit: {"got": unit["rows"]}, label="x", progress=Recording()
    )
    assert result == {"got": [1, 2]}  # a tuple comes back as the list a Ray task's JSON result holds
    assert seen == [("x", {"got": [1, 2]})]
    assert RayExecutor(inline_single_unit=True).map([], lambda unit: unit, label="x") == []
