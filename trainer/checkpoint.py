"""Checkpoints through ``torch.distributed.checkpoint``: everything a bit-exact resume needs, published atomically.

A checkpoint holds the model and optimizer (sharded, by parameter name, so it reloads into another
parallel layout and into a plain model for export), the schedule's position, the data position, the
phase, and every random generator of every rank: Python's, NumPy's, torch's CPU and CUDA generators.
torchtitan saves no RNG state; :class:`RngState` does, keyed by rank, so each rank gets its own back.

Layout: ``checkpoints/step_00000012/`` (DCP's ``.metadata`` and one ``.distcp`` file per rank).
Every rank writes into ``checkpoints/.step_00000012.tmp-*``; after all have finished, rank 0 renames
the directory into place. A checkpoint directory therefore exists only when complete, and a run
killed while saving leaves a temporary directory that the next start deletes.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.checkpoint.stateful import Stateful

from corpusmill.curation.atomic import TMP_MARKER
from corpusmill.curation.errors import CorpusmillError
from corpusmill.trainer.checkpoint_dirs import complete_checkpoints, step_dir_name



class ResumeError(CorpusmillError, RuntimeError):
    """A checkpoint cannot continue this run as launched; the message says what to change."""


@dataclass
class TrainState(Stateful):
    """Where the run is: steps and tokens done, the phase, the next sample of the phase, the layout."""

    step: int = 0
    tokens: int = 0
    phase: int = 0
    next_sample: int = 0  # the data position: samples of the current phase already consumed
    lr: float = 0.0  # the schedule's last value; the schedule itself is a function of the step
    world_size: int = 0
    global_batch: int = 0
    phase_starts: list[int] = field(default_factory=lambda: [0])  # the step each phase began at, as it happened

    def state_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for name, value in state_dict.items():
            setattr(self, name, list(value) if name == "phase_starts" else value)


class ModelState(Stateful):
    def __init__(self, model: torch.nn.Module):
        self.model = model

    def state_dict(self) -> dict[str, Any]:
        return get_model_state_dict(self.model)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        set_model_state_dict(self.model, state_dict)


class OptimizerState(Stateful):
    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer):
        self.model, self.optimizer = model, optimizer

    def state_dict(self) -> dict[str, Any]:
        return get_optimizer_state_dict(self.model, self.optimizer)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        set_optimizer_state_dict(self.model, self.optimizer, state_dict)


class RngState(Stateful):
    """Every generator of this rank, under a key of its own (ranks' states differ; DCP keeps all of them)."""

    def __init__(self, rank: int, device: torch.device):
        self.key = f"rank_{rank}"
        self.device = device

    def state_dict(self) -> dict[str, Any]:
        state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return {self.key: state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = state_dict[self.key]
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        torch.set_rng_state(state["torch"])
        if self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)


class Checkpointer:
    """Saves and restores one run's state; every rank calls each method (they are collective)."""

    def __init__(
        self,
        root: Path,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        train_state: TrainState,
        rank: int,
        device: torch.device,
        keep: int,
    ):
        self.root, self.rank, self.keep = root, rank, keep
        self.train_state = train_state
        self.others = {
            "model": ModelState(model),
            "optimizer": OptimizerState(model, optimizer),
            "rng": RngState(rank, device),
        }

    def _barrier(self) -> None:
        if dist.is_initialized():
            dist.barrier()

    def clear_partial(self) -> None:
        """Delete what a run killed while saving left behind."""
        if self.rank == 0 and self.root.is_dir():
            for leftover in self.root.glob(f".step_*{TMP_MARKER}*"):
                shutil.rmtree(leftover, ignore_errors=True)
        self._barrier()

    def save(self) -> Path:
        step = self.train_state.step
        final = self.root / step_dir_name(step)
        token = [uuid.uuid4().hex[:12]]
        if dist.is_initialized():
            dist.broadcast_object_list(token, src=0)
        partial = self.root / f".{final.name}{TMP_MARKER}{token[0]}"
        state = {"train": self.train_state, "scheduler": {"step": step, "lr": self.train_state.lr}, **self.others}
        dcp.save(state, checkpoint_id=partial)
        self._barrier()
        if self.rank == 0:
            if final.exists():  # the same step saved by an earlier, interrupted invocation
                shutil.rmtree(final)
            partial.rename(final)
            for old in complete_checkpoints(self.root)[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        self._barrier()
        return final

    def load(self, path: Path, world_size: int, global_batch: int) -> None:
        """Restore everything from ``path``; refuse a layout that cannot continue the same run exactly."""
        dcp.load({"train": self.train_state}, checkpoint_id=path)
        saved = (self.train_state.world_size, self.train_state.global_batch)
        if saved != (world_size, global_batch):
            raise ResumeError(
                f"{path} was written by {saved[0]} processes with a global batch of {saved[1]}; resume with the "
                f"same number of processes (now {world_size}, global batch {global_batch}) to continue exactly"
            )
        dcp.load(dict(self.others), checkpoint_id=path)
