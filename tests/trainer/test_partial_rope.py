"""The partial-RoPE kernel against transformers' Nemotron apply_rotary_pos_emb."""

import pytest
import torch
from transformers.models.nemotron.modeling_nemotron import apply_rotary_pos_emb

from corpusmill.trainer.kernels.partial_rope import partial_rope, rope_tables

# (batch, seq, q heads, kv heads, head_dim, rotated features): full rotation, odd half-widths,
# MHA, and the head shapes of Nemotron-4 15B (128, half rotated) and 340B (192, half rotated).
SHAPES = [
    (1, 1, 1, 1, 4, 4),
    (2, 5, 6, 2, 20, 10),
    (1, 7, 3, 3, 12, 4),
    (1, 2, 48, 8, 128, 64),
    (1, 2, 96, 8, 192, 96),
]


@pytest.mark.parametrize(("batch", "seq", "q_heads", "kv_heads", "head_dim", "rotary_dim"), SHAPES)
def test_forward_and_gradients_match_transformers(
    batch, seq, q_heads, kv_heads, head_dim, rotary_dim, dtype, device, assert_matches
):
    generator = torch.Generator().manual_seed(head_dim)
    q = torch.randn(batch, seq, q_heads, head_dim, generator=generator).to(device, dtype)
    k = torch.randn(batch, seq, kv_heads, head_dim, generator=generator).to(device, dtype)
    grad_q = torch.randn(q.shape, generator=generator).to(device, dtype)
    grad_k = torch.randn(k.shape, generator=generator).to(device, dtype)
    cos, sin = rope_tables(seq, rotary_dim, 10000.0, device)

    q_kernel, k_kernel = q.clone().requires_grad_(), k.clone().requires_grad_()
    q_out, k_out = partial_rope(q_kernel, k_kernel, cos, sin)
    torch.autograd.backward((q_out, k_out), (grad_q, grad_k))

    # transformers wants (batch, heads, seq, dim) and cos/sin repeated over both halves.
    q_ref = q.float().transpose(1, 2).requires_grad_()
    k_ref = k.float().transpose(1, 2).requires_grad_()
    q_out_ref, k_out_ref = apply_rotary_pos_emb(
        q_ref, k_ref, torch.cat((cos, cos), -1)[None], torch.cat((sin, sin), -1)[None]
    )
    torch.autograd.backward((q_out_ref, k_out_ref), (grad_q.float().transpose(1, 2), grad_k.float().transpose(1, 2)))

    assert q_out.dtype == dtype and q_out.shape == q.shape and k_out.shape == k.shape
    assert_matches(q_out, q_out_ref.transpose(1, 2), "q")
    assert_matches(k_out, k_out_ref.transpose(1, 2), "k")
    assert_matches(q_kernel.grad, q_ref.grad.transpose(1, 2), "grad q")
    assert_matches(k_kernel.grad, k_ref.grad.transpose(1, 2), "grad k")


def test_tables_that_do_not_fit_the_sequence_are_refused():
    q = torch.randn(1, 6, 2, 8)
    cos, sin = rope_tables(5, 4, 10000.0, q.device)
    with pytest.raises(ValueError, match="rope_tables"):
        partial_rope(q, q, cos, sin)
