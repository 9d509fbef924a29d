"""The training loop, in one file: one process per device, launched by ``torchrun`` (see `corpusmill train`).

Every process reads the run's spec (``RUN_DIR/run.json``), builds the model, shards it with FSDP2
(``trainer/parallelize.py``), restores the latest complete checkpoint if there is one, and steps
through the phases: each step takes the next ``global_batch`` samples of the phase's blend (this
rank's slice of each micro-batch), accumulates gradients over micro-batches, clips the global norm,
and applies AdamW at the schedule's learning rate. A phase ends at a step boundary once its token
budget is spent; the next step starts the next phase's blend and schedule, and the switch is recorded.

Rank 0 appends one line per step to ``RUN_DIR/metrics.jsonl`` and hands the same numbers to the
caller's :class:`TrainReport`; nothing here prints.
"""

from __future__ import annotations

import json
import math
import os
import random
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.tensor import DTensor

from corpusmill.curation.atomic import atomic_path
from corpusmill.trainer.checkpoint import Checkpointer, TrainState
from corpusmill.trainer.checkpoint_dirs import CHECKPOINT_DIR, latest_checkpoint
from corpusmill.trainer.config import METRICS_FILE, RunPlan, RunSpec, TrainSettings, global_batch_size
from corpusmill.trainer.data import PhaseSamples, open_blend
from corpusmill.trainer.kernels.launch import set_fused_kernels
from corpusmill.trainer.model import Nemotron
from corpusmill.trainer.presets import NemotronConfig, training_flops_per_token
from corpusmill.trainer.parallelize import parallelize

DATA_CACHE_DIR = "cache"
# Dense bf16 tensor-core peaks (NVIDIA data sheets, SXM), matched against the device name.
KNOWN_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0}


class TrainReport(Protocol):
    """What the loop tells whoever launched it (rank 0 only)."""

    def note(self, text: str) -> None:
        """A one-line message: the plan, a resume, a phase switch."""

    def step(self, metrics: dict[str, Any], last_step: int) -> None:
        """One step finished; ``metrics`` is its metrics.jsonl line, ``last_step`` where this run stops."""


class SilentReport:
    def note(self, text: str) -> None:
        pass

    def step(self, metrics: dict[str, Any], last_step: int) -> None:
        pass


@dataclass(frozen=True)
class Runtime:
    rank: int
    world_size: int
    device: torch.device
    mesh: DeviceMesh


def init_distributed() -> Runtime:
    """The process group torchrun describes (its environment), or a group of one without it."""
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        if "RANK" in os.environ:
            dist.init_process_group(backend)
        else:
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    return Runtime(dist.get_rank(), dist.get_world_size(), device, mesh)


def peak_flops_per_device(device: torch.device, configured_tflops: float | None) -> float | None:
    """The MFU denominator: as configured, else a known GPU's bf16 dense peak, else unknown (None)."""
    if configured_tflops is not None:
        return configured_tflops * 1e12
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for model, tflops in KNOWN_PEAK_TFLOPS.items():
            if model in name:
                return tflops * 1e12
    return None


def max_memory_bytes(device: torch.device) -> int:
    """Peak memory of this process: allocated on the GPU, else the resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def build_model(
    config: NemotronConfig,
    runtime: Runtime,
    *,
    activation_checkpointing: bool = False,
    compile: bool = False,
) -> Nemotron:
    """The sharded model, initialised from the current torch seed.

    On a GPU it is built on the meta device and each rank initialises only its shards; on CPU the
    whole model is initialised on every rank first (the same values everywhere), then sharded.
    """
    if runtime.device.type == "cuda":
        with torch.device("meta"):
            model = Nemotron(config)
        parallelize(model, runtime.mesh, activation_checkpointing=activation_checkpointing, compile=compile)
        model.to_empty(device=runtime.device)
        model.init_weights()
        return model
    model = Nemotron(config)
    return parallelize(model, runtime.mesh, activation_checkpointing=activation_checkpointing, compile=compile)


def build_optimizer(model: torch.nn.Module, settings: TrainSettings) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices and embeddings, none on norm weights and biases (1-D)."""
    decay = [param for param in model.parameters() if param.ndim >= 2]
    no_decay = [param for param in model.parameters() if param.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": settings.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups, lr=settings.lr, betas=(settings.adam_beta1, settings.adam_beta2), eps=settings.adam_eps
    )


def train_step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, micro_batches: list[torch.Tensor], grad_clip: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step over ``micro_batches`` (each ``(batch, seq + 1)`` token ids); the mean loss and grad norm.

    Gradients are reduce-scattered only after the last micro-batch.
    """
    total = torch.zeros((), device=micro_batches[0].device)
    for number, tokens in enumerate(micro_batches):
        model.set_requires_gradient_sync(number == len(micro_batches) - 1)
        loss = model(tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()) / len(micro_batches)
        loss.backward()
        total += loss.detach()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if isinstance(grad_norm, DTensor):
        grad_norm = grad_norm.full_tensor()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total, grad_norm


def seed_generators(seed: int, rank: int) -> None:
    """Every generator of this rank, seeded apart from the other ranks' (restored from checkpoints on resume)."""
    random.seed(seed + rank)
    np.random.seed(seed + rank)
    torch.manual_seed(seed + rank)


class MetricsLog:
    """``metrics.jsonl``, written by rank 0; a resumed run first drops lines past its checkpoint."""

    def __init__(self, path: Path, keep_through_step: int, enabled: bool):
        self.path, self.enabled = path, enabled
        if enabled and path.exists():
            kept = [line for line in path.read_text().splitlines() if _line_step(line) <= keep_through_step]
            with atomic_path(path) as partial:
                partial.write_text("".join(line + "\n" for line in kept))

    def write(self, metrics: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a") as handle:
                handle.write(json.dumps(metrics) + "\n")


def _line_step(line: str) -> float:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return math.inf  # a torn last line: dropped


@dataclass(frozen=True)
class TrainResult:
    first_step: int  # the step this invocation started from
    last_step: int  # the step it stopped at
    total_steps: int  # the steps all phases' budgets plan


class _PhaseData:
    """Each phase's samples, opened when the phase is reached (rank 0 builds the blend index first)."""

    def __init__(self, spec: RunSpec, plan: RunPlan, cache_dir: Path, rank: int):
        self.spec, self.plan, self.cache_dir, self.rank = spec, plan, cache_dir, rank
        self.opened: dict[int, PhaseSamples] = {}

    def get(self, index: int) -> PhaseSamples:
        if index not in self.opened:
            phase = self.plan.phases[index]
            blend = open_blend(phase.spec.blend, self.spec.tokenizer["sha256"])
            arguments = (blend, self.spec.seq_length, self.spec.settings.seed, index)
            samples = phase.steps * self.plan.global_batch
            if self.rank == 0:  # builds and caches the blend index ...
                self.opened[index] = PhaseSamples.open(*arguments, samples, self.cache_dir)
            dist.barrier()
            if self.rank != 0:  # ... which the other ranks then memory-map
                self.opened[index] = PhaseSamples.open(*arguments, samples, self.cache_dir)
        return self.opened[index]


def train(run_dir: Path, steps: int | None = None, report: TrainReport | None = None) -> TrainResult:
    """Train the run in ``run_dir`` up to ``steps`` (default: every phase's budget), resuming where it stopped."""
    spec = RunSpec.read(run_dir)
    runtime = init_distributed()
    try:
        return _train(run_dir, spec, steps, runtime, (report or SilentReport()) if runtime.rank == 0 else SilentReport())
    finally:
        dist.destroy_process_group()


def _train(run_dir: Path, spec: RunSpec, steps: int | None, runtime: Runtime, report: TrainReport) -> TrainResult:
    settings = spec.settings
    fused = settings.fused_kernels
    set_fused_kernels(runtime.device.type == "cuda" if fused is None else fused)
    plan = RunPlan(spec, global_batch_size(settings, runtime.world_size))
    micro = settings.micro_batch_size
    accumulation = plan.global_batch // (micro * runtime.world_size)

    torch.manual_seed(settings.seed)
    model = build_model(
        spec.model, runtime, activation_checkpointing=settings.activation_checkpointing, compile=settings.compile
    )
    optimizer = build_optimizer(model, settings)
    state = TrainState(world_size=runtime.world_size, global_batch=plan.global_batch)
    checkpoints = Checkpointer(
        run_dir / CHECKPOINT_DIR, model, optimizer, state, runtime.rank, runtime.device, settings.keep_checkpoints
    )
    checkpoints.clear_partial()
    seed_generators(settings.seed, runtime.rank)
    latest = latest_checkpoint(run_dir / CHECKPOINT_DIR)
    if latest is not None:
        checkpoints.load(latest, runtime.world_size, plan.global_batch)
        report.note(f"resuming from {latest} (step {state.step}, phase {state.phase})")
    first_step = state.step
    last_step = plan.total_steps if steps is None else min(steps, plan.total_steps)
    for phase in plan.phases:
        report.note(
            f"phase {phase.spec.index} ({phase.spec.name}): steps {phase.start_step}-{phase.end_step - 1}, "
            f"{phase.spec.tokens:.3g} tokens, lr {phase.spec.lr:g} -> {phase.spec.min_lr:g} ({phase.spec.schedule})"
        )
    if first_step >= last_step:
        report.note(f"already at step {first_step} of {last_step}; nothing to train")
        return TrainResult(first_step, first_step, plan.total_steps)

    metrics_log = MetricsLog(run_dir / METRICS_FILE, state.step, enabled=runtime.rank == 0)
    data = _PhaseData(spec, plan, run_dir / DATA_CACHE_DIR, runtime.rank)
    flops_per_token = training_flops_per_token(spec.model)
    peak = peak_flops_per_device(runtime.device, settings.peak_tflops)
    while state.step < last_step:
        started = time.perf_counter()
        phase = plan.phase_at(state.step)
        if phase.spec.index != state.phase:
            state.phase, state.next_sample = phase.spec.index, 0
            state.phase_starts.append(state.step)
            report.note(f"step {state.step}: phase {phase.spec.index} ({phase.spec.name}) starts, {phase.spec.blend}")
        samples = data.get(phase.spec.index)
        state.lr = plan.lr_at(state.step)
        for group in optimizer.param_groups:
            group["lr"] = state.lr
        micro_batches = []
        for number in range(accumulation):
            first = state.next_sample + (number * runtime.world_size + runtime.rank) * micro
            tokens = torch.from_numpy(samples.samples(first, first + micro))
            micro_batches.append(tokens.to(runtime.device, non_blocking=True))
        loss, grad_norm = train_step(model, optimizer, micro_batches, settings.grad_clip)
        dist.all_reduce(loss)
        state.step += 1
        state.next_sample += plan.global_batch
        state.tokens += plan.tokens_per_step
        loss_value = loss.item() / runtime.world_size
        elapsed = time.perf_counter() - started
        tokens_per_s = plan.tokens_per_step / elapsed
        metrics = {
            "step": state.step,
            "phase": phase.spec.index,
            "loss": loss_value,
            "lr": state.lr,
            "grad_norm": grad_norm.item(),
            "tokens": state.tokens,
            "tokens_per_s": tokens_per_s,
            "mfu": None if peak is None else tokens_per_s * flops_per_token / (peak * runtime.world_size),
            "max_memory_bytes": max_memory_bytes(runtime.device),
        }
        metrics_log.write(metrics)
        report.step(metrics, last_step)
        if state.step % settings.checkpoint_every == 0 or state.step == last_step:
            saved = checkpoints.save()
            report.note(f"step {state.step}: checkpoint {saved}")
    return TrainResult(first_step, state.step, plan.total_steps)
