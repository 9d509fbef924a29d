"""The squared-ReLU kernel against relu(x) ** 2, and what it keeps for the backward."""

import pytest
import torch

from corpusmill.trainer.kernels.squared_relu import squared_relu

# One element, one ragged block, several blocks with a ragged tail in a 3-d MLP activation.
SHAPES = [(1,), (1000,), (3, 5, 2049)]


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_and_gradient_match_relu_squared(shape, dtype, device, assert_matches):
    generator = torch.Generator().manual_seed(len(shape))
    x = torch.randn(shape, generator=generator).to(device, dtype)
    x.view(-1)[::7] = 0.0  # the kink: both sides must give gradient 0 there
    grad_y = torch.randn(shape, generator=generator).to(device, dtype)

    x_kernel = x.clone().requires_grad_()
    y = squared_relu(x_kernel)
    y.backward(grad_y)

    x_ref = x.float().requires_grad_()
    y_ref = torch.relu(x_ref) ** 2
    y_ref.backward(grad_y.float())

    assert y.dtype == dtype
    assert_matches(y, y_ref, "output")
    assert_matches(x_kernel.grad, x_ref.grad, "grad x")


def test_saves_only_the_pre_activation(device):
    x = torch.randn(4, 300, device=device, requires_grad=True)
    pre_activation = x * 1.0
    saved = []

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        squared_relu(pre_activation)

    assert len(saved) == 1 and saved[0].data_ptr() == pre_activation.data_ptr()
