"""The trainer's fused kernels against PyTorch eager, torch.compile and Liger-Kernel.

On a CUDA GPU, at Nemotron-4 15B shapes in bf16: each kernel's forward + backward is checked against
an eager float32 reference, then timed (median) and its peak memory measured next to the eager
PyTorch reference, ``torch.compile`` of that reference and, for the loss, Liger-Kernel's fused
linear cross-entropy when it is installed. Without a GPU: the same correctness checks at small shapes
in float32 and float16 under Triton's CPU interpreter, so CI proves the script and the kernels run.

    python benchmarks/kernels_gpu.py                      # GPU: full comparison; CPU: correctness only
    python benchmarks/kernels_gpu.py --tokens 8192 16384 32768 --out bench.md
"""

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Tensors = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class Shapes:
    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    head_dim: int
    rotary_dim: int
    vocab: int
    seq: int


NEMOTRON_15B = Shapes(hidden=6144, ffn=24576, heads=48, kv_heads=8, head_dim=128, rotary_dim=64, vocab=256000, seq=4096)
# Small, deliberately non-power-of-two shapes the CPU interpreter gets through in seconds.
INTERPRETER = Shapes(hidden=48, ffn=80, heads=4, kv_heads=2, head_dim=12, rotary_dim=6, vocab=1001, seq=7)
# Largest error relative to the reference's magnitude; bf16 stores 8 significant bits.
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}


@dataclass(frozen=True)
class Case:
    """Differentiable inputs, constant arguments, and the upstream gradient of each output."""

    inputs: Tensors
    constants: tuple
    upstream: Tensors


@dataclass(frozen=True)
class Op:
    """One kernel: how to build a case at a size, and the implementations to compare."""

    name: str
    make_case: Callable[[Shapes, int, torch.dtype, torch.device], Case]
    eager: Callable
    fused: Callable


def _random(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, scale: float = 1.0) -> torch.Tensor:
    return (scale * torch.randn(shape, device=device, dtype=torch.float32)).to(dtype)


def _leaves(*tensors: torch.Tensor) -> Tensors:
    return tuple(tensor.requires_grad_() for tensor in tensors)


def _build_ops() -> list[Op]:
    """Imported late: Triton reads TRITON_INTERPRET when the kernels are defined."""
    from corpusmill.trainer.kernels.fused_linear_cross_entropy import IGNORE_INDEX, fused_linear_cross_entropy
    from corpusmill.trainer.kernels.layer_norm_1p import layer_norm_1p, layer_norm_1p_torch
    from corpusmill.trainer.kernels.partial_rope import partial_rope, partial_rope_torch, rope_tables
    from corpusmill.trainer.kernels.squared_relu import squared_relu, squared_relu_torch

    def loss_case(shapes: Shapes, tokens: int, dtype: torch.dtype, device: torch.device) -> Case:
        targets = torch.randint(0, shapes.vocab, (tokens,), device=device)
        targets[::10] = IGNORE_INDEX
        hidden = _random((tokens, shapes.hidden), dtype, device)
        weight = _random((shapes.vocab, shapes.hidden), dtype, device, scale=shapes.hidden**-0.5)
        return Case(_leaves(hidden, weight), (targets,), (torch.tensor(1.7, device=device),))

    def materialised_loss(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(F.linear(hidden, weight).float(), targets, ignore_index=IGNORE_INDEX)

    def norm_case(shapes: Shapes, tokens: int, dtype: torch.dtype, device: torch.device) -> Case:
        x = _random((tokens, shapes.hidden), dtype, device)
        weight, bias = _random((shapes.hidden,), dtype, device, 0.1), _random((shapes.hidden,), dtype, device, 0.1)
        return Case(_leaves(x, weight, bias), (1e-5,), (_random(x.shape, dtype, device),))

    def activation_case(shapes: Shapes, tokens: int, dtype: torch.dtype, device: torch.device) -> Case:
        x = _random((tokens, shapes.ffn), dtype, device)
        return Case(_leaves(x), (), (_random(x.shape, dtype, device),))

    def rope_case(shapes: Shapes, tokens: int, dtype: torch.dtype, device: torch.device) -> Case:
        batch = tokens // shapes.seq
        q = _random((batch, shapes.seq, shapes.heads, shapes.head_dim), dtype, device)
        k = _random((batch, shapes.seq, shapes.kv_heads, shapes.head_dim), dtype, device)
        tables = rope_tables(shapes.seq, shapes.rotary_dim, 10000.0, device)
        return Case(_leaves(q, k), tables, (_random(q.shape, dtype, device), _random(k.shape, dtype, device)))

    return [
        Op("linear_cross_entropy", loss_case, materialised_loss, fused_linear_cross_entropy),
        Op("layer_norm_1p", norm_case, layer_norm_1p_torch, layer_norm_1p),
        Op("squared_relu", activation_case, squared_relu_torch, squared_relu),
        Op("partial_rope", rope_case, partial_rope_torch, partial_rope),
    ]


def _liger_loss() -> Callable | None:
    """Liger-Kernel's fused linear cross-entropy with our argument order, or None if not installed."""
    try:
        from liger_kernel.transformers.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyLoss
    except ImportError:
        return None
    loss = LigerFusedLinearCrossEntropyLoss(ignore_index=-100)
    return lambda hidden, weight, targets: loss(weight, hidden, targets)


def _forward_backward(fn: Callable, case: Case) -> Tensors:
    """Outputs, then input gradients, of one forward + backward."""
    for tensor in case.inputs:
        tensor.grad = None
    outputs = fn(*case.inputs, *case.constants)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    torch.autograd.backward(outputs, case.upstream)
    return tuple(out.detach() for out in outputs) + tuple(tensor.grad for tensor in case.inputs)


def _in_float32(case: Case) -> Case:
    return Case(
        _leaves(*(tensor.detach().float() for tensor in case.inputs)),
        case.constants,
        tuple(tensor.float() for tensor in case.upstream),
    )


def check(op: Op, shapes: Shapes, tokens: int, dtype: torch.dtype, device: torch.device) -> tuple[float, bool]:
    """Fused forward + backward in ``dtype`` against the eager reference on the same values in float32.

    The error of each output and gradient is measured relative to that tensor's largest magnitude.
    """
    torch.manual_seed(0)
    case = op.make_case(shapes, tokens, dtype, device)
    fused = _forward_backward(op.fused, case)
    reference = _forward_backward(op.eager, _in_float32(case))
    error = max(((a.float() - b).abs().max() / b.abs().max()).item() for a, b in zip(fused, reference) if b.any())
    return error, error <= TOLERANCE[dtype]


def measure(fn: Callable, case: Case) -> tuple[float, float]:
    """Median milliseconds and peak GiB allocated beyond the inputs, for one forward + backward."""
    import triton.testing

    _forward_backward(fn, case)  # compile, autotune, warm the allocator
    for tensor in case.inputs:
        tensor.grad = None
    torch.cuda.synchronize()
    baseline = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    _forward_backward(fn, case)
    torch.cuda.synchronize()
    peak_gib = (torch.cuda.max_memory_allocated() - baseline) / 2**30
    milliseconds = triton.testing.do_bench(lambda: _forward_backward(fn, case), return_mode="median")
    return milliseconds, peak_gib


def run_correctness(
    ops: list[Op], shapes: Shapes, tokens: int, dtypes: list[torch.dtype], device: torch.device
) -> tuple[list[str], bool]:
    lines = ["| kernel | dtype | tokens | max error / scale | tolerance | result |", "|---|---|---|---|---|---|"]
    all_passed = True
    for op in ops:
        for dtype in dtypes:
            error, passed = check(op, shapes, tokens, dtype, device)
            all_passed &= passed
            lines.append(
                f"| {op.name} | {str(dtype).removeprefix('torch.')} | {tokens} | {error:.2e} | "
                f"{TOLERANCE[dtype]:.0e} | {'PASS' if passed else 'FAIL'} |"
            )
    return lines, all_passed


def run_timings(ops: list[Op], shapes: Shapes, token_counts: list[int], device: torch.device) -> list[str]:
    lines = [
        "| kernel | tokens | implementation | fwd+bwd ms (median) | peak GiB beyond inputs |",
        "|---|---|---|---|---|",
    ]
    liger = _liger_loss()
    for op in ops:
        implementations = {"eager": op.eager, "torch.compile": torch.compile(op.eager), "fused (ours)": op.fused}
        if op.name == "linear_cross_entropy":
            implementations["Liger-Kernel"] = liger or "not installed (pip install liger-kernel)"
        for tokens in token_counts:
            for label, fn in implementations.items():
                if isinstance(fn, str):
                    lines.append(f"| {op.name} | {tokens} | {label} | {fn} | |")
                    continue
                torch.manual_seed(0)
                case = op.make_case(shapes, tokens, torch.bfloat16, device)
                try:
                    milliseconds, peak_gib = measure(fn, case)
                    lines.append(f"| {op.name} | {tokens} | {label} | {milliseconds:.3f} | {peak_gib:.2f} |")
                except torch.cuda.OutOfMemoryError:
                    lines.append(f"| {op.name} | {tokens} | {label} | out of memory | |")
                del case
                torch.cuda.empty_cache()
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--tokens",
        type=int,
        nargs="+",
        default=[8192, 16384, 32768],
        help="tokens per step on a GPU (multiples of 4096, the sequence length)",
    )
    parser.add_argument(
        "--check-tokens",
        type=int,
        default=2048 * 2,
        help="tokens for the GPU correctness check, whose float32 reference holds the full logits",
    )
    parser.add_argument("--out", help="also write the markdown tables to this file")
    args = parser.parse_args(argv)

    if torch.cuda.is_available():
        device = torch.device("cuda")
        header = [
            f"Device: {torch.cuda.get_device_name(device)}; torch {torch.__version__}; Nemotron-4 15B shapes, bf16."
        ]
        ops = _build_ops()
        checks, passed = run_correctness(ops, NEMOTRON_15B, args.check_tokens, [torch.bfloat16], device)
        tables = header + ["", "Correctness (bf16 vs float32 eager):", ""] + checks
        if passed:
            tables += ["", "Speed and memory:", ""] + run_timings(ops, NEMOTRON_15B, args.tokens, device)
    else:
        os.environ["TRITON_INTERPRET"] = "1"
        device = torch.device("cpu")
        ops = _build_ops()
        checks, passed = run_correctness(ops, INTERPRETER, 2 * INTERPRETER.seq, [torch.float32, torch.float16], device)
        tables = ["No CUDA GPU: correctness only, Triton interpreter on CPU, small shapes; no timings.", ""] + checks

    report = "\n".join(tables)
    print(report)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(report + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
