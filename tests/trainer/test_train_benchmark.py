"""benchmarks/train_gpu.py: its model is the ~1B Nemotron shape it claims, and its logic runs on CPU (--dry-run)."""

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from corpusmill.trainer.model import Nemotron

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_gpu.py"


def _script():
    spec = importlib.util.spec_from_file_location("train_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_benchmarked_model_is_a_1b_nemotron_at_seq_4096_and_vocab_256k():
    config = _script()._shape(dry_run=False)
    with torch.device("meta"):
        parameters = sum(param.numel() for param in Nemotron(config).parameters())
    assert (config.seq_length, config.vocab_size, config.head_dim) == (4096, 256000, 128)
    assert parameters / 1e9 == pytest.approx(1.04, abs=0.01)


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the script measures for real; run it by hand")
def test_dry_run_measures_a_variant_and_prints_its_row(tmp_path):
    environment = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    out = tmp_path / "train.md"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--variants", "eager", "--no-kernel-table", "--out", str(out)],
        capture_output=True, text=True, env=environment, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("| eager |")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "128" and float(cells[3].replace(",", "")) > 0 and cells[4] == "n/a"
    assert float(cells[6]) == pytest.approx(math.log(512), rel=0.05)  # an untrained model's loss
    assert out.read_text() == result.stdout
