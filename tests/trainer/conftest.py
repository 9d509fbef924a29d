"""Kernel tests run compiled on a CUDA GPU, and under Triton's CPU interpreter everywhere else.

Triton decides interpreter-or-compiler when a kernel is defined, so the switch is set here, before
any test module imports ``trainer.kernels``. The interpreter's bf16 ``tl.dot`` is wrong, so bf16
cases run on a GPU only.
"""

import importlib
import os

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
# Largest error allowed, relative to the reference's largest magnitude, for results computed in each dtype.
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}
KERNEL_MODULES = [
    f"corpusmill.trainer.kernels.{name}"
    for name in ("fused_linear_cross_entropy", "layer_norm_1p", "partial_rope", "squared_relu")
]


def pytest_configure(config: pytest.Config) -> None:
    if not HAS_CUDA:
        os.environ["TRITON_INTERPRET"] = "1"


@pytest.fixture
def device() -> torch.device:
    return torch.device("cuda" if HAS_CUDA else "cpu")


@pytest.fixture(
    params=[
        torch.float32,
        torch.float16,
        pytest.param(
            torch.bfloat16, marks=pytest.mark.skipif(not HAS_CUDA, reason="interpreter bf16 is wrong; GPU only")
        ),
    ],
    ids=["fp32", "fp16", "bf16"],
)
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    return request.param


@pytest.fixture
def assert_matches(dtype: torch.dtype):
    """Compare a kernel's result in ``dtype`` with a float32 reference, scaled to the reference's size."""

    def check(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
        tolerance = TOLERANCE[dtype]
        scale = expected.abs().max().item() or 1.0
        torch.testing.assert_close(
            actual.float(),
            expected.float(),
            rtol=tolerance,
            atol=tolerance * scale,
            msg=lambda message: f"{what} ({dtype}): {message}",
        )

    return check


@pytest.fixture
def pytorch_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send every op down its plain PyTorch path, as on a machine with neither GPU nor interpreter."""
    for module in KERNEL_MODULES:
        monkeypatch.setattr(importlib.import_module(module), "triton_can_run", lambda kernel, *tensors: False)
