"""Training throughput of the bundled trainer on one GPU, and the kernel table, in one run.

A ~1B-parameter Nemotron-shaped model (10 layers, hidden 1536, 12 heads / 4 KV heads of 128, FFN 6144,
squared ReLU, sequences of 4096, vocabulary 256,000: 1.04B parameters, 0.25B outside the embeddings)
is trained with the very functions `corpusmill train` uses (``build_model``: FSDP2 on a one-GPU mesh,
bf16 parameters and fp32 reductions; ``build_optimizer``: AdamW; ``train_step``: forward, backward,
clip at 1.0, step) in four variants, one after another in this process:

    eager          PyTorch ops (the kernels' fallbacks), no compilation
    eager+fused    the fused Triton kernels (LayerNorm1P, partial RoPE, squared ReLU, linear + CE)
    compile        torch.compile of every block, fallbacks
    compile+fused  torch.compile of every block, fused kernels

Tokens are random (the data path is not what is measured). After warm-up steps (compilation,
autotuning, the allocator), each variant times its steps; tokens/s comes from the median step, MFU
from ``training_flops_per_token`` over the device's bf16 dense peak (989 TFLOP/s on H100/H200), peak
memory from ``torch.cuda.max_memory_allocated``. Then ``benchmarks/kernels_gpu.py`` prints its
per-kernel table (eager vs compile vs fused vs Liger-Kernel) as a subprocess, so both tables come
from one invocation::

    python benchmarks/train_gpu.py --out train_gpu.md

``--dry-run`` runs the same logic on CPU at a tiny shape (the fused variants through Triton's
interpreter), to prove the script without a GPU; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

VARIANTS = ("eager", "eager+fused", "compile", "compile+fused")
KERNEL_TABLE = Path(__file__).with_name("kernels_gpu.py")


@dataclass(frozen=True)
class Measured:
    variant: str
    tokens_per_step: int
    step_seconds: float | None = None  # median; None when the variant did not run
    peak_bytes: int = 0
    loss: float = float("nan")
    failure: str | None = None  # why it did not run (out of memory, an error): the table says so and goes on


def _shape(dry_run: bool):
    from corpusmill.trainer.presets import NemotronConfig

    if dry_run:
        return NemotronConfig(
            num_layers=2, hidden_size=64, ffn_hidden_size=256, num_heads=4, num_kv_heads=2, seq_length=64,
            vocab_size=512,
        )  # fmt: skip
    return NemotronConfig(
        num_layers=10, hidden_size=1536, ffn_hidden_size=6144, num_heads=12, num_kv_heads=4, seq_length=4096,
        vocab_size=256000,
    )  # fmt: skip


def measure(variant: str, config, runtime, micro_batch: int, warmup: int, steps: int) -> Measured:
    import torch

    from corpusmill.trainer.config import TrainSettings
    from corpusmill.trainer.kernels.launch import set_fused_kernels
    from corpusmill.trainer.train import build_model, build_optimizer, max_memory_bytes, train_step

    tokens_per_step = micro_batch * config.seq_length
    if runtime.device.type == "cpu" and variant == "compile+fused":
        return Measured(variant, tokens_per_step, failure="not on CPU: torch.compile cannot trace Triton's interpreter")
    set_fused_kernels("fused" in variant)
    torch._dynamo.reset()
    torch.manual_seed(0)
    cuda = runtime.device.type == "cuda"
    model = optimizer = None
    try:
        model = build_model(config, runtime, compile=variant.startswith("compile"))
        optimizer = build_optimizer(model, TrainSettings())
        batch = torch.randint(0, config.vocab_size, (micro_batch, config.seq_length + 1), device=runtime.device)
        for _ in range(warmup):
            train_step(model, optimizer, [batch], 1.0)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        seconds = []
        for _ in range(steps):
            started = time.perf_counter()
            loss, _ = train_step(model, optimizer, [batch], 1.0)
            loss_value = loss.item()  # waits for the step
            seconds.append(time.perf_counter() - started)
        return Measured(
            variant, tokens_per_step, statistics.median(seconds), max_memory_bytes(runtime.device), loss_value
        )
    except torch.OutOfMemoryError:
        return Measured(variant, tokens_per_step, failure="out of memory")
    except Exception as error:  # GPU time is short: record the failure and measure the other variants
        return Measured(variant, tokens_per_step, failure=f"{type(error).__name__}: {str(error).splitlines()[0][:200]}")
    finally:
        del model, optimizer
        if cuda:
            torch.cuda.empty_cache()


def table(results: list[Measured], flops_per_token: int, peak_flops: float | None) -> list[str]:
    lines = [
        "| variant | tokens/step | step ms (median) | tokens/s | MFU | peak GiB | last loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        if result.step_seconds is None:
            lines.append(f"| {result.variant} | {result.tokens_per_step} | {result.failure} | | | | |")
            continue
        tokens_per_s = result.tokens_per_step / result.step_seconds
        mfu = "n/a" if peak_flops is None else f"{tokens_per_s * flops_per_token / peak_flops:.1%}"
        lines.append(
            f"| {result.variant} | {result.tokens_per_step} | {result.step_seconds * 1e3:.1f} | {tokens_per_s:,.0f} | "
            f"{mfu} | {result.peak_bytes / 2**30:.2f} | {result.loss:.3f} |"
        )
    return lines


def kernel_table(dry_run: bool) -> tuple[list[str], int]:
    """benchmarks/kernels_gpu.py's tables, from a fresh process (Triton picks its mode at import)."""
    environment = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    command = [sys.executable, str(KERNEL_TABLE)] + (["--tokens", "8192"] if dry_run else [])
    result = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    return result.stdout.splitlines() + ([result.stderr] if result.returncode else []), result.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--micro-batch", type=int, default=4, help="sequences per step (4 x 4096 tokens)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per variant")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {VARIANTS}")
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak (default: known H100/H200)")
    parser.add_argument("--no-kernel-table", action="store_true", help="skip benchmarks/kernels_gpu.py")
    parser.add_argument("--dry-run", action="store_true", help="tiny shape on CPU: checks the script, not speed")
    parser.add_argument("--out", help="also write the markdown to this file")
    args = parser.parse_args(argv)
    variants = [variant.strip() for variant in args.variants.split(",") if variant.strip()]
    if unknown := sorted(set(variants) - set(VARIANTS)):
        parser.error(f"unknown variants {unknown}; choose from {VARIANTS}")
    if args.dry_run:
        os.environ["TRITON_INTERPRET"] = "1"  # before the kernels are defined: fused variants run interpreted
        args.micro_batch, args.warmup, args.steps = 2, 1, 2

    import torch

    from corpusmill.trainer.presets import training_flops_per_token
    from corpusmill.trainer.train import init_distributed, peak_flops_per_device

    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no CUDA GPU: run with --dry-run to check the script on CPU")
    runtime = init_distributed()
    config = _shape(args.dry_run)
    flops_per_token = training_flops_per_token(config)
    peak = peak_flops_per_device(runtime.device, args.peak_tflops)
    with torch.device("meta"):
        from corpusmill.trainer.model import Nemotron

        parameters = sum(param.numel() for param in Nemotron(config).parameters())
    device = torch.cuda.get_device_name(runtime.device) if runtime.device.type == "cuda" else "CPU (dry run)"
    report = [
        f"Device: {device}; torch {torch.__version__}; {parameters / 1e6:,.1f}M parameters "
        f"({config.num_layers} layers, hidden {config.hidden_size}, seq {config.seq_length}, vocab {config.vocab_size}); "
        f"{flops_per_token / 1e9:.2f} GFLOP per token; peak {'unknown' if peak is None else f'{peak / 1e12:.0f} TFLOP/s'}; "
        f"FSDP2 on 1 device, bf16 params / fp32 reduce on GPU; {args.warmup} warm-up + {args.steps} timed steps.",
        "",
    ]
    results = [measure(v, config, runtime, args.micro_batch, args.warmup, args.steps) for v in variants]
    report += table(results, flops_per_token, peak)
    torch.distributed.destroy_process_group()
    status = 0
    if not args.no_kernel_table:
        kernel_lines, status = kernel_table(args.dry_run)
        report += ["", "Kernels (benchmarks/kernels_gpu.py):", ""] + kernel_lines
    text = "\n".join(report)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
