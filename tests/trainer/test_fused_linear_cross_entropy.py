"""Fused linear + cross-entropy against torch's cross_entropy on fully materialised logits."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from corpusmill.trainer.kernels.fused_linear_cross_entropy import IGNORE_INDEX, fused_linear_cross_entropy

# (tokens, hidden, vocab, rows per chunk): one token, a ragged last chunk over a non-power-of-two
# vocabulary, and a vocabulary wider than one kernel block with the default chunking.
SHAPES = [(1, 8, 7, None), (37, 24, 1001, 16), (24, 16, 4099, None)]


def _inputs(tokens, hidden, vocab, dtype, device):
    generator = torch.Generator().manual_seed(vocab)
    hidden_states = torch.randn(tokens, hidden, generator=generator).to(device, dtype)
    weight = (0.5 * torch.randn(vocab, hidden, generator=generator)).to(device, dtype)
    targets = torch.randint(0, vocab, (tokens,), generator=generator)
    targets[3::5] = IGNORE_INDEX
    return hidden_states, weight, targets.to(device)


@pytest.fixture(params=["triton", "pytorch"])
def path(request: pytest.FixtureRequest) -> str:
    if request.param == "pytorch":
        request.getfixturevalue("pytorch_fallback")
    return request.param


@pytest.mark.parametrize(("tokens", "hidden", "vocab", "chunk_rows"), SHAPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_loss_and_gradients_match_cross_entropy(
    tokens, hidden, vocab, chunk_rows, reduction, path, dtype, device, assert_matches
):
    hidden_states, weight, targets = _inputs(tokens, hidden, vocab, dtype, device)
    upstream = 2.5  # a loss scale, as in gradient accumulation, must reach both gradients

    inputs = [hidden_states.clone().requires_grad_(), weight.clone().requires_grad_()]
    loss = fused_linear_cross_entropy(*inputs, targets, reduction=reduction, chunk_rows=chunk_rows)
    (upstream * loss).backward()

    references = [hidden_states.float().requires_grad_(), weight.float().requires_grad_()]
    loss_ref = F.cross_entropy(references[0] @ references[1].T, targets, ignore_index=IGNORE_INDEX, reduction=reduction)
    (upstream * loss_ref).backward()

    assert loss.dtype == torch.float32
    assert_matches(loss, loss_ref, "loss")
    assert_matches(inputs[0].grad, references[0].grad, "grad hidden")
    assert_matches(inputs[1].grad, references[1].grad, "grad weight")


def test_batched_hidden_states_keep_their_shape(device):
    hidden_states, weight, targets = _inputs(12, 8, 50, torch.float32, device)
    batched = hidden_states.view(3, 4, 8).requires_grad_()
    loss = fused_linear_cross_entropy(batched, weight, targets.view(3, 4))
    loss.backward()
    assert batched.grad.shape == (3, 4, 8)
    torch.testing.assert_close(loss, F.cross_entropy(hidden_states @ weight.T, targets), rtol=1e-5, atol=1e-5)


def test_all_positions_ignored_gives_zero_loss_and_gradients(path, device):
    hidden_states, weight, _ = _inputs(6, 8, 30, torch.float32, device)
    hidden_states.requires_grad_()
    weight.requires_grad_()
    loss = fused_linear_cross_entropy(hidden_states, weight, torch.full((6,), IGNORE_INDEX, device=device))
    loss.backward()
    assert loss.item() == 0.0
    assert not hidden_states.grad.any() and not weight.grad.any()


def test_never_materialises_the_full_logits(device):
    tokens, hidden, vocab, chunk_rows = 64, 16, 3000, 8
    hidden_states, weight, targets = _inputs(tokens, hidden, vocab, torch.float32, device)
    hidden_states.requires_grad_()
    weight.requires_grad_()

    class LargestTensor(TorchDispatchMode):
        largest_bytes = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for tensor in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(tensor, torch.Tensor):
                    self.largest_bytes = max(self.largest_bytes, tensor.numel() * tensor.element_size())
            return out

    with LargestTensor() as watch:
        fused_linear_cross_entropy(hidden_states, weight, targets, chunk_rows=chunk_rows).backward()

    float_bytes = 4
    assert watch.largest_bytes == float_bytes * max(chunk_rows * vocab, vocab * hidden) < float_bytes * tokens * vocab


def test_second_backward_is_refused_with_the_reason(device):
    hidden_states, weight, targets = _inputs(5, 8, 20, torch.float32, device)
    loss = fused_linear_cross_entropy(hidden_states.requires_grad_(), weight, targets)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="retain_graph"):
        loss.backward()
