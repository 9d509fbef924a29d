"""Partial rotary position embedding (NeoX halves) for queries and keys in one kernel launch.

Nemotron-4 rotates only the first ``rotary_dim`` features of each head (half by default) and passes
the rest through. One program per token rotates all of that token's query and key heads, reading the
position's cos/sin once; the backward is the same rotation with the sine negated.
"""

import torch
import triton
import triton.language as tl

from corpusmill.trainer.kernels.launch import triton_can_run


def rope_tables(seq_len: int, rotary_dim: int, theta: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, each ``(seq_len, rotary_dim // 2)`` float32, for positions ``0 .. seq_len - 1``."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, rotary_dim, 2, dtype=torch.float32, device=device) / rotary_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32, device=device), inv_freq)
    return angles.cos(), angles.sin()


@triton.jit
def _rotate_token_heads(
    in_ptr,
    out_ptr,
    cos,
    sin,
    n_heads,
    head_dim,
    half_rotary,
    BLOCK_HEADS: tl.constexpr,
    BLOCK_HALF: tl.constexpr,
    BLOCK_PASS: tl.constexpr,
):
    heads = tl.arange(0, BLOCK_HEADS)[:, None]
    freqs = tl.arange(0, BLOCK_HALF)[None, :]
    rotary_mask = (heads < n_heads) & (freqs < half_rotary)
    first_half = heads * head_dim + freqs
    second_half = first_half + half_rotary
    x1 = tl.load(in_ptr + first_half, mask=rotary_mask, other=0.0).to(tl.float32)
    x2 = tl.load(in_ptr + second_half, mask=rotary_mask, other=0.0).to(tl.float32)
    out_type = out_ptr.dtype.element_ty
    tl.store(out_ptr + first_half, (x1 * cos - x2 * sin).to(out_type), mask=rotary_mask)
    tl.store(out_ptr + second_half, (x2 * cos + x1 * sin).to(out_type), mask=rotary_mask)
    passed = heads * head_dim + 2 * half_rotary + tl.arange(0, BLOCK_PASS)[None, :]
    pass_mask = (heads < n_heads) & (passed < (heads + 1) * head_dim)
    tl.store(out_ptr + passed, tl.load(in_ptr + passed, mask=pass_mask), mask=pass_mask)


@triton.jit
def _partial_rope_kernel(
    q_ptr,
    k_ptr,
    q_out_ptr,
    k_out_ptr,
    cos_ptr,
    sin_ptr,
    seq_len,
    n_q_heads,
    n_k_heads,
    head_dim,
    half_rotary,
    sin_sign,
    BLOCK_Q_HEADS: tl.constexpr,
    BLOCK_K_HEADS: tl.constexpr,
    BLOCK_HALF: tl.constexpr,
    BLOCK_PASS: tl.constexpr,
):
    token = tl.program_id(0).to(tl.int64)
    position = token % seq_len
    freqs = tl.arange(0, BLOCK_HALF)
    in_table = freqs < half_rotary
    cos = tl.load(cos_ptr + position * half_rotary + freqs, mask=in_table, other=0.0)[None, :]
    sin = sin_sign * tl.load(sin_ptr + position * half_rotary + freqs, mask=in_table, other=0.0)[None, :]
    q_offset = token * n_q_heads * head_dim
    k_offset = token * n_k_heads * head_dim
    _rotate_token_heads(
        q_ptr + q_offset,
        q_out_ptr + q_offset,
        cos,
        sin,
        n_q_heads,
        head_dim,
        half_rotary,
        BLOCK_Q_HEADS,
        BLOCK_HALF,
        BLOCK_PASS,
    )
    _rotate_token_heads(
        k_ptr + k_offset,
        k_out_ptr + k_offset,
        cos,
        sin,
        n_k_heads,
        head_dim,
        half_rotary,
        BLOCK_K_HEADS,
        BLOCK_HALF,
        BLOCK_PASS,
    )


def _rotate_q_and_k(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, sin_sign: float
) -> tuple[torch.Tensor, torch.Tensor]:
    batch, seq_len, n_q_heads, head_dim = q.shape
    half_rotary = cos.shape[-1]
    q, k = q.contiguous(), k.contiguous()
    q_out, k_out = torch.empty_like(q), torch.empty_like(k)
    _partial_rope_kernel[(batch * seq_len,)](
        q,
        k,
        q_out,
        k_out,
        cos.contiguous(),
        sin.contiguous(),
        seq_len,
        n_q_heads,
        k.shape[2],
        head_dim,
        half_rotary,
        sin_sign,
        BLOCK_Q_HEADS=triton.next_power_of_2(n_q_heads),
        BLOCK_K_HEADS=triton.next_power_of_2(k.shape[2]),
        BLOCK_HALF=triton.next_power_of_2(half_rotary),
        BLOCK_PASS=triton.next_power_of_2(max(head_dim - 2 * half_rotary, 1)),
    )
    return q_out, k_out


class PartialRoPEFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        ctx.save_for_backward(cos, sin)
        return _rotate_q_and_k(q, k, cos, sin, sin_sign=1.0)

    @staticmethod
    def backward(ctx, grad_q_out: torch.Tensor, grad_k_out: torch.Tensor):
        cos, sin = ctx.saved_tensors
        grad_q, grad_k = _rotate_q_and_k(grad_q_out, grad_k_out, cos, sin, sin_sign=-1.0)
        return grad_q, grad_k, None, None


def _rotate_torch(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half_rotary = cos.shape[-1]
    cos, sin = cos[:, None, :], sin[:, None, :]
    x1 = x[..., :half_rotary].float()
    x2 = x[..., half_rotary : 2 * half_rotary].float()
    rotated = torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).to(x.dtype)
    return torch.cat((rotated, x[..., 2 * half_rotary :]), dim=-1)


def partial_rope_torch(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain PyTorch partial RoPE: the fallback, and the reference the kernel is measured against."""
    return _rotate_torch(q, cos, sin), _rotate_torch(k, cos, sin)


def partial_rope(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate the first ``2 * cos.shape[-1]`` features of every head of q and k.

    q is ``(batch, seq, q_heads, head_dim)``, k ``(batch, seq, kv_heads, head_dim)``, and cos/sin come
    from ``rope_tables(seq, rotary_dim, ...)``; Triton where it can run.
    """
    if cos.shape != (q.shape[1], cos.shape[-1]) or 2 * cos.shape[-1] > q.shape[-1]:
        raise ValueError(
            f"cos/sin of shape {tuple(cos.shape)} do not fit q of shape {tuple(q.shape)}: build them with "
            "rope_tables(seq_len=q.shape[1], rotary_dim<=head_dim, ...)"
        )
    if triton_can_run(_partial_rope_kernel, q, k, cos, sin):
        return PartialRoPEFunction.apply(q, k, cos, sin)
    return partial_rope_torch(q, k, cos, sin)
