"""What every kernel needs to launch: where Triton can run, and block sizes for row-wise ops.

Triton reads ``TRITON_INTERPRET`` when a kernel is *defined*, so the kernel object itself says
whether it was built for the CPU interpreter (CI) or for a GPU; ops ask here before launching and
otherwise fall back to plain PyTorch.
"""

import torch
import triton
from triton.runtime.interpreter import InterpretedFunction

# Widest row one program holds in registers (Nemotron-4 340B's is 18432); wider rows take the PyTorch path.
MAX_FUSED_ROW = 65536
# Programs that accumulate partial sums under the interpreter, where every program runs one after another.
INTERPRETER_PROGRAMS = 4


_fused_kernels_enabled = True


def set_fused_kernels(enabled: bool) -> None:
    """Turn every op's Triton path on or off for this process (off: the plain PyTorch fallback).

    The trainer's ``fused_kernels`` setting lands here: a benchmark compares both paths, and CPU runs
    take the fallback even where the Triton interpreter is switched on (it is for testing, not speed).
    """
    global _fused_kernels_enabled
    _fused_kernels_enabled = enabled


def triton_can_run(kernel: object, *tensors: torch.Tensor) -> bool:
    """Interpreted kernels run on any tensor; compiled ones only on CUDA tensors."""
    if not _fused_kernels_enabled:
        return False
    if isinstance(kernel, InterpretedFunction):
        return True
    return all(tensor.is_cuda for tensor in tensors)


def row_block_settings(n_cols: int) -> tuple[int, int]:
    """Block size (a power of two covering the row) and warps for a one-row-per-program kernel."""
    block_size = triton.next_power_of_2(n_cols)
    if block_size >= 32768:
        return block_size, 32
    if block_size >= 8192:
        return block_size, 16
    if block_size >= 2048:
        return block_size, 8
    return block_size, 4


def persistent_programs(device: torch.device, n_rows: int) -> int:
    """How many programs split the rows when each accumulates a partial sum: one per SM on a GPU."""
    if device.type == "cuda":
        return max(1, min(n_rows, torch.cuda.get_device_properties(device).multi_processor_count))
    return max(1, min(n_rows, INTERPRETER_PROGRAMS))
