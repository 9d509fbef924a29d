"""`corpusmill train --blend BLEND_DIR [--blend PHASE2_DIR ...] --out RUN_DIR`: launch the bundled trainer with torchrun.

The command resolves and checks everything it can before any process starts (settings, the
tokenizer card, every shard's tokenizer checksum; ``corpusmill.trainer.config``), records the run in
``RUN_DIR/run.json`` (or checks it is the run recorded there), then runs
``torchrun ... -m corpusmill.pipelines.train_worker RUN_DIR``: one worker per device, on one node, or
on several through torchrun's c10d rendezvous (``--nnodes N --rdzv-endpoint HOST:PORT``; run the
same command on every node, with RUN_DIR on a file system they share). Re-running the command resumes
from the latest complete checkpoint.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from corpusmill.curation.command import StageCommand
from corpusmill.curation.errors import ConfigError, CorpusmillError
from corpusmill.curation.executor import Executor
from corpusmill.curation.options import APPEND, option
from corpusmill.trainer.config import METRICS_FILE, claim_run_dir, resolve_run
from corpusmill.trainer.presets import PRESETS

WORKER_MODULE = "corpusmill.pipelines.train_worker"


@dataclass(frozen=True, kw_only=True)
class TrainOptions:
    """`corpusmill train --blend DIR [--blend DIR ...] --out RUN_DIR [--config FILE] [--set KEY=VALUE ...]`."""

    blend: tuple[str, ...] = option(
        help="a `corpusmill blend resolve` output (its trainer.json); repeat for later phases, in order", cli=APPEND
    )
    out: str = option(help="run directory: run.json, metrics.jsonl, checkpoints/")
    config: str | None = option(None, help="YAML file of training settings (keys: see README, `corpusmill train`)")
    preset: str | None = option(None, choices=tuple(PRESETS), help="model shape; overrides the config's `preset`")
    steps: int | None = option(None, help="stop after this many steps in all (default: every phase's token budget)")
    nproc_per_node: int = option(1, help="processes per node, one per GPU (on CPU: gloo processes)")
    nnodes: str = option("1", help="nodes, or MIN:MAX for an elastic job (torchrun --nnodes)")
    rdzv_endpoint: str | None = option(None, help="HOST:PORT of the rendezvous for a multi-node run")
    rdzv_id: str = option("corpusmill", help="job id shared by the nodes of one multi-node run")
    overrides: tuple[str, ...] = option(
        (), flag="--set", cli=APPEND, metavar="KEY=VALUE", help="a setting (repeatable): lr=3e-4, model.num_layers=4"
    )

    def __post_init__(self) -> None:
        if self.nproc_per_node < 1:
            raise ConfigError(f"--nproc-per-node must be at least 1, got {self.nproc_per_node}")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"--steps must be at least 1, got {self.steps}")
        if self.nnodes != "1" and self.rdzv_endpoint is None:
            raise ConfigError(f"--nnodes {self.nnodes}: give --rdzv-endpoint HOST:PORT (a node every node reaches)")


@dataclass(frozen=True)
class TrainRun:
    """What a finished invocation trained: the run directory and its metrics lines."""

    run_dir: Path
    metrics: list[dict]


def torchrun_command(options: TrainOptions, run_dir: Path) -> list[str]:
    """The torchrun invocation: standalone on one node, c10d rendezvous across several."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={options.nproc_per_node}"]
    if options.rdzv_endpoint is None:
        command.append("--standalone")
    else:
        command += [
            f"--nnodes={options.nnodes}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={options.rdzv_endpoint}",
            f"--rdzv-id={options.rdzv_id}",
        ]
    command += ["-m", WORKER_MODULE, str(run_dir)]
    if options.steps is not None:
        command += ["--steps", str(options.steps)]
    return command


def run_training(options: TrainOptions, *, executor: Executor, overwrite: bool = False) -> TrainRun:
    run_dir = Path(options.out).resolve()
    spec = resolve_run(options.blend, options.config, options.preset, options.overrides)
    if claim_run_dir(run_dir, spec, overwrite):
        executor.progress.note(f"[train] {run_dir} holds this run; continuing from its latest checkpoint")
    exit_code = subprocess.run(torchrun_command(options, run_dir), check=False).returncode
    if exit_code != 0:
        raise CorpusmillError(
            f"training stopped: torchrun exited with status {exit_code} (the workers' errors are above); "
            "run the same command again to resume from the latest checkpoint"
        )
    metrics_path = run_dir / METRICS_FILE
    lines = metrics_path.read_text().splitlines() if metrics_path.exists() else []
    return TrainRun(run_dir, [json.loads(line) for line in lines])


def loss_curve(run: TrainRun, points: int = 12) -> str:
    """What the CLI prints: the loss at evenly spaced steps, and where the metrics are."""
    if not run.metrics:
        return f"no steps trained; metrics in {run.run_dir / METRICS_FILE}"
    stride = max(1, len(run.metrics) // points)
    shown = run.metrics[::stride]
    if shown[-1] is not run.metrics[-1]:
        shown.append(run.metrics[-1])
    lines = ["step  phase      loss        lr"]
    lines += [f"{m['step']:>4}  {m['phase']:>5}  {m['loss']:>8.4f}  {m['lr']:>8.2e}" for m in shown]
    lines.append(f"metrics: {run.run_dir / METRICS_FILE}; checkpoints: {run.run_dir / 'checkpoints'}")
    return "\n".join(lines)


COMMANDS = [
    StageCommand(
        ("train",),
        "train the bundled Nemotron-4 model on resolved blends (torchrun, FSDP2; resumes exactly)",
        TrainOptions,
        run_training,
        loss_curve,
    )
]
