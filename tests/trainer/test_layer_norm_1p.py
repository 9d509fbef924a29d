"""The LayerNorm1P kernel against torch's own layer_norm with scale weight + 1."""

import pytest
import torch
import torch.nn.functional as F

from corpusmill.trainer.kernels.launch import MAX_FUSED_ROW
from corpusmill.trainer.kernels.layer_norm_1p import layer_norm_1p

# (leading shape, hidden): a single short row, non-powers of two, a 3-d batch, Nemotron-15B's width.
SHAPES = [((1,), 3), ((5,), 100), ((2, 7), 257), ((3,), 6144)]


@pytest.mark.parametrize(("leading", "hidden"), SHAPES)
def test_forward_and_gradients_match_torch_layer_norm(leading, hidden, dtype, device, assert_matches):
    generator = torch.Generator().manual_seed(hidden)
    x = (3.0 * torch.randn(*leading, hidden, generator=generator) + 0.5).to(device, dtype)
    weight = (0.2 * torch.randn(hidden, generator=generator)).to(device, dtype)
    bias = (0.2 * torch.randn(hidden, generator=generator)).to(device, dtype)
    grad_y = torch.randn(*leading, hidden, generator=generator).to(device, dtype)

    inputs = [t.clone().requires_grad_() for t in (x, weight, bias)]
    y = layer_norm_1p(*inputs, eps=1e-5)
    y.backward(grad_y)

    references = [t.float().requires_grad_() for t in (x, weight, bias)]
    y_ref = F.layer_norm(references[0], (hidden,), references[1] + 1.0, references[2], 1e-5)
    y_ref.backward(grad_y.float())

    assert y.dtype == dtype and y.shape == x.shape
    assert_matches(y, y_ref, "output")
    for name, tensor, reference in zip(("grad x", "grad weight", "grad bias"), inputs, references):
        assert_matches(tensor.grad, reference.grad, name)


def test_half_inputs_with_float32_parameters_as_under_autocast(device):
    x = torch.randn(9, 33, device=device).half().requires_grad_()
    weight = (0.1 * torch.randn(33, device=device)).requires_grad_()
    bias = (0.1 * torch.randn(33, device=device)).requires_grad_()
    y = layer_norm_1p(x, weight, bias, eps=1e-5)
    y.float().sum().backward()

    y_ref = F.layer_norm(x.float(), (33,), weight.detach() + 1.0, bias.detach(), 1e-5)
    assert y.dtype == torch.float16 and weight.grad.dtype == torch.float32
    torch.testing.assert_close(y.float(), y_ref, rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(bias.grad, torch.full_like(bias, 9.0))


def test_rows_wider_than_one_program_holds_take_the_pytorch_path():
    width = MAX_FUSED_ROW + 1
    x = torch.randn(2, width, requires_grad=True)
    weight, bias = torch.zeros(width), torch.zeros(width)
    y = layer_norm_1p(x, weight, bias, eps=1e-5)
    assert type(y.grad_fn).__name__ == "NativeLayerNormBackward0"
    torch.testing.assert_close(y, F.layer_norm(x, (width,), eps=1e-5))
