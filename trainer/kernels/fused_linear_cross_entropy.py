"""Output projection + cross-entropy that never holds the full ``tokens x vocab`` logits.

At Nemotron-4's 256k vocabulary the logits of a 16k-token step are 8 GiB in bf16 (twice that with
their gradient). Tokens are processed in chunks: each chunk's logits are computed, turned in place
into their gradient by one Triton pass per row (online log-sum-exp, then softmax minus one-hot), and
immediately folded into the input and weight gradients. Backward only rescales those gradients.
"""

from typing import Literal

import torch
import triton
import triton.language as tl

from corpusmill.trainer.kernels.launch import triton_can_run

IGNORE_INDEX = -100
VOCAB_BLOCK = 4096


@triton.jit
def _cross_entropy_grad_in_place_kernel(
    logits_ptr,
    targets_ptr,
    losses_ptr,
    n_cols,
    ignore_index,
    grad_scale,
    BLOCK_SIZE: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    logits_ptr += row * n_cols
    target = tl.load(targets_ptr + row)
    if target == ignore_index:
        for start in range(0, n_cols, BLOCK_SIZE):
            cols = start + tl.arange(0, BLOCK_SIZE)
            tl.store(logits_ptr + cols, tl.zeros((BLOCK_SIZE,), dtype=logits_ptr.dtype.element_ty), mask=cols < n_cols)
        tl.store(losses_ptr + row, 0.0)
        return
    running_max = -float("inf")
    running_sum = 0.0
    for start in range(0, n_cols, BLOCK_SIZE):
        cols = start + tl.arange(0, BLOCK_SIZE)
        block = tl.load(logits_ptr + cols, mask=cols < n_cols, other=-float("inf")).to(tl.float32)
        new_max = tl.maximum(running_max, tl.max(block, axis=0))
        running_sum = running_sum * tl.exp(running_max - new_max) + tl.sum(tl.exp(block - new_max), axis=0)
        running_max = new_max
    log_sum_exp = running_max + tl.log(running_sum)
    target_logit = tl.load(logits_ptr + target).to(tl.float32)
    for start in range(0, n_cols, BLOCK_SIZE):
        cols = start + tl.arange(0, BLOCK_SIZE)
        block = tl.load(logits_ptr + cols, mask=cols < n_cols, other=-float("inf")).to(tl.float32)
        grad = tl.exp(block - log_sum_exp) - tl.where(cols == target, 1.0, 0.0)
        tl.store(logits_ptr + cols, (grad * grad_scale).to(logits_ptr.dtype.element_ty), mask=cols < n_cols)
    tl.store(losses_ptr + row, log_sum_exp - target_logit)


def _cross_entropy_grad_in_place_triton(
    logits: torch.Tensor, targets: torch.Tensor, losses: torch.Tensor, ignore_index: int, grad_scale: float
) -> None:
    n_rows, n_cols = logits.shape
    _cross_entropy_grad_in_place_kernel[(n_rows,)](
        logits,
        targets,
        losses,
        n_cols,
        ignore_index,
        grad_scale,
        BLOCK_SIZE=min(VOCAB_BLOCK, triton.next_power_of_2(n_cols)),
        num_warps=16,
    )


def _cross_entropy_grad_in_place_torch(
    logits: torch.Tensor, targets: torch.Tensor, losses: torch.Tensor, ignore_index: int, grad_scale: float
) -> None:
    counted = targets != ignore_index
    safe_targets = torch.where(counted, targets, 0)[:, None]
    logits_fp32 = logits.float()
    log_sum_exp = torch.logsumexp(logits_fp32, dim=-1)
    losses.copy_((log_sum_exp - logits_fp32.gather(1, safe_targets).squeeze(1)) * counted)
    grad = torch.exp(logits_fp32 - log_sum_exp[:, None])
    grad.scatter_add_(1, safe_targets, torch.full(safe_targets.shape, -1.0, device=logits.device))
    logits.copy_(grad * (counted * grad_scale)[:, None])


def default_chunk_rows(n_rows: int, hidden_size: int, vocab_size: int) -> int:
    """Rows per chunk so one chunk's logits are about as large as the hidden states (Liger's rule)."""
    return triton.next_power_of_2(triton.cdiv(n_rows, triton.cdiv(vocab_size, hidden_size)))


def _loss_and_grads(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int,
    reduction: str,
    chunk_rows: int,
    want_grads: tuple[bool, bool],
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    use_triton = triton_can_run(_cross_entropy_grad_in_place_kernel, hidden, weight)
    grad_rows_in_place = _cross_entropy_grad_in_place_triton if use_triton else _cross_entropy_grad_in_place_torch
    weight_dtype = weight.dtype
    weight = weight.to(hidden.dtype)
    n_counted = int((targets != ignore_index).sum())
    grad_scale = 1.0 / max(n_counted, 1) if reduction == "mean" else 1.0
    losses = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
    grad_hidden = torch.empty_like(hidden) if want_grads[0] else None
    grad_weight = torch.zeros_like(weight) if want_grads[1] else None
    for start in range(0, hidden.shape[0], chunk_rows):
        rows = slice(start, start + chunk_rows)
        logits = hidden[rows] @ weight.T
        grad_rows_in_place(logits, targets[rows], losses[rows], ignore_index, grad_scale)
        if grad_hidden is not None:
            torch.matmul(logits, weight, out=grad_hidden[rows])
        if grad_weight is not None:
            grad_weight.addmm_(logits.T, hidden[rows])
    if grad_weight is not None:
        grad_weight = grad_weight.to(weight_dtype)
    return losses.sum() * grad_scale, grad_hidden, grad_weight


class FusedLinearCrossEntropyFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        ignore_index: int,
        reduction: str,
        chunk_rows: int | None,
    ) -> torch.Tensor:
        hidden_rows = hidden.reshape(-1, hidden.shape[-1]).contiguous()
        target_rows = targets.reshape(-1).contiguous()
        loss, grad_hidden, grad_weight = _loss_and_grads(
            hidden_rows,
            weight,
            target_rows,
            ignore_index,
            reduction,
            chunk_rows or default_chunk_rows(*hidden_rows.shape, weight.shape[0]),
            want_grads=(ctx.needs_input_grad[0], ctx.needs_input_grad[1]),
        )
        ctx.hidden_shape = hidden.shape
        ctx.grads = (grad_hidden, grad_weight)
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss: torch.Tensor):
        if ctx.grads is None:
            raise RuntimeError(
                "fused_linear_cross_entropy computed its gradients in the forward pass and has already "
                "handed them out; run the forward again instead of backward(retain_graph=True) twice"
            )
        grad_hidden, grad_weight = ctx.grads
        ctx.grads = None
        if grad_hidden is not None:
            grad_hidden = grad_hidden.mul_(grad_loss).view(ctx.hidden_shape)
        if grad_weight is not None:
            grad_weight = grad_weight.mul_(grad_loss)
        return grad_hidden, grad_weight, None, None, None, None


def fused_linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int = IGNORE_INDEX,
    reduction: Literal["mean", "sum"] = "mean",
    chunk_rows: int | None = None,
) -> torch.Tensor:
    """Cross-entropy of ``hidden @ weight.T`` against ``targets`` without materialising the logits.

    ``hidden`` is ``(..., hidden_size)``, ``weight`` ``(vocab, hidden_size)``, ``targets`` the matching
    ``(...)`` token ids; positions equal to ``ignore_index`` count for nothing ("mean" divides by the
    counted positions, and is 0 when there are none). Math is in float32 per row; logits and
    gradients are held in ``hidden``'s dtype, as an eager bf16 ``lm_head`` would hold them.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', not {reduction!r}")
    if targets.shape != hidden.shape[:-1]:
        raise ValueError(f"targets of shape {tuple(targets.shape)} do not match hidden states {tuple(hidden.shape)}")
    return FusedLinearCrossEntropyFunction.apply(hidden, weight, targets, ignore_index, reduction, chunk_rows)
