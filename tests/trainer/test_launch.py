"""Where the kernels may run: the decision every op makes before falling back to PyTorch."""

import importlib

import pytest
import torch
import triton

from corpusmill.trainer.kernels.launch import row_block_settings, triton_can_run


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


@pytest.mark.parametrize(
    ("module", "kernel"),
    [
        ("fused_linear_cross_entropy", "_cross_entropy_grad_in_place_kernel"),
        ("layer_norm_1p", "_layer_norm_1p_forward_kernel"),
        ("partial_rope", "_partial_rope_kernel"),
        ("squared_relu", "_squared_relu_forward_kernel"),
    ],
)
def test_kernel_tests_exercise_triton_not_the_fallback(module, kernel, device):
    """Without this, a missing TRITON_INTERPRET would let every reference test compare PyTorch with itself."""
    defined_kernel = getattr(importlib.import_module(f"corpusmill.trainer.kernels.{module}"), kernel)
    assert triton_can_run(defined_kernel, torch.zeros(1, device=device))
