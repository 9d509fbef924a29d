"""benchmarks/kernels_gpu.py runs: without a GPU it checks every kernel on the CPU interpreter."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "kernels_gpu.py"
KERNELS = ["linear_cross_entropy", "layer_norm_1p", "squared_relu", "partial_rope"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the script times full Nemotron shapes; run it by hand")
def test_cpu_mode_checks_every_kernel_in_float32_and_float16(tmp_path):
    report_path = tmp_path / "report.md"
    environment = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(report_path)],
        check=False,
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "PASS" in line]
    assert sorted((row.split(" | ")[0][2:], row.split(" | ")[1]) for row in rows) == sorted(
        (kernel, dtype) for kernel in KERNELS for dtype in ("float32", "float16")
    )
    assert report_path.read_text() == result.stdout
