"""LayerNorm1P (scale is ``weight + 1``) as one Triton pass forward and one backward.

The forward saves only per-row mean and 1/std, so the backward never re-reads a normalised copy of
the input; weight and bias gradients are reduced per program and summed once at the end.
"""

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from corpusmill.trainer.kernels.launch import MAX_FUSED_ROW, persistent_programs, row_block_settings, triton_can_run


@triton.jit
def _layer_norm_1p_forward_kernel(
    x_ptr,
    y_ptr,
    weight_ptr,
    bias_ptr,
    mean_ptr,
    rstd_ptr,
    n_cols,
    eps,
    BLOCK_SIZE: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_SIZE)
    in_row = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=in_row, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=0) / n_cols
    centred = tl.where(in_row, x - mean, 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(centred * centred, axis=0) / n_cols + eps)
    scale = tl.load(weight_ptr + cols, mask=in_row, other=0.0).to(tl.float32) + 1.0
    shift = tl.load(bias_ptr + cols, mask=in_row, other=0.0).to(tl.float32)
    y = centred * rstd * scale + shift
    tl.store(y_ptr + row * n_cols + cols, y.to(y_ptr.dtype.element_ty), mask=in_row)
    tl.store(mean_ptr + row, mean)
    tl.store(rstd_ptr + row, rstd)


@triton.jit
def _layer_norm_1p_backward_kernel(
    grad_y_ptr,
    x_ptr,
    weight_ptr,
    mean_ptr,
    rstd_ptr,
    grad_x_ptr,
    grad_weight_partial_ptr,
    grad_bias_partial_ptr,
    n_rows,
    n_cols,
    rows_per_program,
    BLOCK_SIZE: tl.constexpr,
):
    program = tl.program_id(0)
    first_row = program * rows_per_program
    last_row = tl.minimum(first_row + rows_per_program, n_rows)
    cols = tl.arange(0, BLOCK_SIZE)
    in_row = cols < n_cols
    scale = tl.load(weight_ptr + cols, mask=in_row, other=0.0).to(tl.float32) + 1.0
    grad_weight = tl.zeros((BLOCK_SIZE,), dtype=tl.float32)
    grad_bias = tl.zeros((BLOCK_SIZE,), dtype=tl.float32)
    first_offset = first_row.to(tl.int64) * n_cols
    x_ptr += first_offset
    grad_y_ptr += first_offset
    grad_x_ptr += first_offset
    for row in range(first_row, last_row):
        x = tl.load(x_ptr + cols, mask=in_row, other=0.0).to(tl.float32)
        grad_y = tl.load(grad_y_ptr + cols, mask=in_row, other=0.0).to(tl.float32)
        rstd = tl.load(rstd_ptr + row)
        x_hat = tl.where(in_row, (x - tl.load(mean_ptr + row)) * rstd, 0.0)
        grad_x_hat = grad_y * scale
        mean_grad = tl.sum(grad_x_hat, axis=0) / n_cols
        mean_grad_dot_x_hat = tl.sum(grad_x_hat * x_hat, axis=0) / n_cols
        grad_x = (grad_x_hat - mean_grad - x_hat * mean_grad_dot_x_hat) * rstd
        tl.store(grad_x_ptr + cols, grad_x.to(grad_x_ptr.dtype.element_ty), mask=in_row)
        grad_weight += grad_y * x_hat
        grad_bias += grad_y
        x_ptr += n_cols
        grad_y_ptr += n_cols
        grad_x_ptr += n_cols
    tl.store(grad_weight_partial_ptr + program * n_cols + cols, grad_weight, mask=in_row)
    tl.store(grad_bias_partial_ptr + program * n_cols + cols, grad_bias, mask=in_row)


class LayerNorm1PFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
        n_cols = x.shape[-1]
        x_rows = x.reshape(-1, n_cols).contiguous()
        n_rows = x_rows.shape[0]
        y_rows = torch.empty_like(x_rows)
        mean = torch.empty(n_rows, dtype=torch.float32, device=x.device)
        rstd = torch.empty(n_rows, dtype=torch.float32, device=x.device)
        block_size, num_warps = row_block_settings(n_cols)
        _layer_norm_1p_forward_kernel[(n_rows,)](
            x_rows,
            y_rows,
            weight,
            bias,
            mean,
            rstd,
            n_cols,
            eps,
            BLOCK_SIZE=block_size,
            num_warps=num_warps,
        )
        ctx.save_for_backward(x_rows, weight, mean, rstd)
        ctx.bias_dtype = bias.dtype
        return y_rows.view(x.shape)

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        x_rows, weight, mean, rstd = ctx.saved_tensors
        n_rows, n_cols = x_rows.shape
        grad_y_rows = grad_y.reshape(-1, n_cols).contiguous()
        grad_x_rows = torch.empty_like(x_rows)
        n_programs = persistent_programs(x_rows.device, n_rows)
        rows_per_program = triton.cdiv(n_rows, n_programs)
        grad_weight_partial = torch.empty(n_programs, n_cols, dtype=torch.float32, device=x_rows.device)
        grad_bias_partial = torch.empty_like(grad_weight_partial)
        block_size, num_warps = row_block_settings(n_cols)
        _layer_norm_1p_backward_kernel[(n_programs,)](
            grad_y_rows,
            x_rows,
            weight,
            mean,
            rstd,
            grad_x_rows,
            grad_weight_partial,
            grad_bias_partial,
            n_rows,
            n_cols,
            rows_per_program,
            BLOCK_SIZE=block_size,
            num_warps=num_warps,
        )
        grad_weight = grad_weight_partial.sum(dim=0).to(weight.dtype)
        grad_bias = grad_bias_partial.sum(dim=0).to(ctx.bias_dtype)
        return grad_x_rows.view(grad_y.shape), grad_weight, grad_bias, None


def layer_norm_1p_torch(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """Plain PyTorch LayerNorm1P: the fallback, and the reference the kernel is measured against."""
    return F.layer_norm(x, (x.shape[-1],), weight + 1.0, bias, eps)


def layer_norm_1p(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm over the last dimension with scale ``weight + 1``; Triton where it can run."""
    if x.shape[-1] <= MAX_FUSED_ROW and triton_can_run(_layer_norm_1p_forward_kernel, x, weight, bias):
        return LayerNorm1PFunction.apply(x, weight, bias, eps)
    return layer_norm_1p_torch(x, weight, bias, eps)
