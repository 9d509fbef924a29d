"""Squared ReLU, ``relu(x) ** 2``, the Nemotron-4 MLP activation, in one elementwise pass each way.

Autograd in eager mode keeps both the pre-activation and ``relu(x)`` alive for the backward; this op
saves the pre-activation only and rebuilds ``2 * relu(x)`` from it when the gradient arrives.
"""

import torch
import triton
import triton.language as tl

from corpusmill.trainer.kernels.launch import triton_can_run

ELEMENTS_PER_PROGRAM = 1024


@triton.jit
def _squared_relu_forward_kernel(x_ptr, y_ptr, n_elements, BLOCK_SIZE: tl.constexpr):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    in_bounds = offsets < n_elements
    x = tl.load(x_ptr + offsets, mask=in_bounds, other=0.0).to(tl.float32)
    positive = tl.maximum(x, 0.0)
    tl.store(y_ptr + offsets, (positive * positive).to(y_ptr.dtype.element_ty), mask=in_bounds)


@triton.jit
def _squared_relu_backward_kernel(x_ptr, grad_y_ptr, grad_x_ptr, n_elements, BLOCK_SIZE: tl.constexpr):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    in_bounds = offsets < n_elements
    x = tl.load(x_ptr + offsets, mask=in_bounds, other=0.0).to(tl.float32)
    grad_y = tl.load(grad_y_ptr + offsets, mask=in_bounds, other=0.0).to(tl.float32)
    grad_x = 2.0 * tl.maximum(x, 0.0) * grad_y
    tl.store(grad_x_ptr + offsets, grad_x.to(grad_x_ptr.dtype.element_ty), mask=in_bounds)


class SquaredReLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        y = torch.empty_like(x)
        grid = (triton.cdiv(x.numel(), ELEMENTS_PER_PROGRAM),)
        _squared_relu_forward_kernel[grid](x, y, x.numel(), BLOCK_SIZE=ELEMENTS_PER_PROGRAM)
        ctx.save_for_backward(x)
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        grad_y = grad_y.contiguous()
        grad_x = torch.empty_like(x)
        grid = (triton.cdiv(x.numel(), ELEMENTS_PER_PROGRAM),)
        _squared_relu_backward_kernel[grid](x, grad_y, grad_x, x.numel(), BLOCK_SIZE=ELEMENTS_PER_PROGRAM)
        return grad_x


def squared_relu_torch(x: torch.Tensor) -> torch.Tensor:
    """Plain PyTorch squared ReLU: the fallback, and the reference the kernel is measured against."""
    return torch.square(torch.relu(x))


def squared_relu(x: torch.Tensor) -> torch.Tensor:
    """``relu(x) ** 2``; Triton where it can run."""
    if triton_can_run(_squared_relu_forward_kernel, x):
        return SquaredReLUFunction.apply(x)
    return squared_relu_torch(x)
