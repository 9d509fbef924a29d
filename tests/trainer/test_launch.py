"""Where the kernels may run: the decision every op makes before falling back to PyTorch."""

import torch
import triton

from trainer.kernels.launch import row_block_settings, triton_can_run


def _add_one(x_ptr):
    pass


def test_interpreted_kernels_run_on_cpu_and_compiled_ones_need_cuda(monkeypatch):
    cpu_tensor = torch.zeros(3)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert triton_can_run(triton.jit(_add_one), cpu_tensor)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert not triton_can_run(triton.jit(_add_one), cpu_tensor)


def test_block_covers_the_row_with_more_warps_for_wider_rows():
    assert row_block_settings(100) == (128, 4)
    assert row_block_settings(6144) == (8192, 16)  # Nemotron-4 15B hidden size
    assert row_block_settings(18432) == (32768, 32)  # Nemotron-4 340B hidden size
