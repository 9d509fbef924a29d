"""`corpusmill train export RUN_DIR --out HF_DIR`: a checkpoint as a Hugging Face ``NemotronForCausalLM``.

The model is rebuilt from the run's spec, its weights loaded from the checkpoint (latest complete
one by default) by ``torch.distributed.checkpoint`` in this one process, whatever the layout it was
saved from, and written as ``config.json`` + safetensors (sharded above 5 GB, with an index) +
the tokenizer (``tokenizer.model``, and ``tokenizer.json`` / ``tokenizer_config.json`` made by
``transformers`` from it). Parameter names already follow ``NemotronForCausalLM``'s, under ``model.``;
LayerNorm1P stores ``weight`` zero-centred in both. ``AutoModelForCausalLM.from_pretrained(HF_DIR)``
then computes the trainer's logits, and ``AutoTokenizer`` encodes as SentencePiece does.

The export is written beside ``HF_DIR`` and renamed into place, so ``HF_DIR`` is complete or absent.
"""

from __future__ import annotations

import json
import shutil
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from corpusmill.curation.atomic import TMP_MARKER
from corpusmill.curation.command import StageCommand
from corpusmill.curation.errors import ConfigError, CorpusmillError
from corpusmill.curation.executor import Executor
from corpusmill.curation.options import option
from corpusmill.tokenizer.codec import MODEL_FILE
from corpusmill.trainer.checkpoint_dirs import CHECKPOINT_DIR, latest_checkpoint
from corpusmill.trainer.config import RunSpec
from corpusmill.trainer.presets import NemotronConfig

if TYPE_CHECKING:
    import torch

    from corpusmill.trainer.model import Nemotron

DTYPES = ("float32", "bfloat16")  # torch dtype names: torch is imported only when weights are written
MAX_SHARD_SIZE = "5GB"


@dataclass(frozen=True, kw_only=True)
class ExportOptions:
    """`corpusmill train export RUN_DIR --out HF_DIR [--checkpoint DIR] [--dtype bfloat16]`."""

    run_dir: str = option(positional=True, help="a `corpusmill train` run directory")
    out: str = option(help="directory for the Hugging Face checkpoint (must not exist, unless --overwrite)")
    checkpoint: str | None = option(None, help="a checkpoint directory of the run (default: the latest complete one)")
    dtype: str = option("float32", choices=DTYPES, help="dtype of the exported weights")


@dataclass(frozen=True)
class Exported:
    out: Path
    checkpoint: Path
    parameters: int


def hf_config(config: NemotronConfig, tokenizer: dict, dtype: str):
    """The ``transformers.NemotronConfig`` of our shape (transformers 5 spells RoPE as ``rope_parameters``)."""
    from transformers import NemotronConfig as HFNemotronConfig

    special = {name: tokenizer.get(name, -1) for name in ("bos_id", "eod_id", "pad_id")}
    return HFNemotronConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.ffn_hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads,
        head_dim=config.head_dim,
        max_position_embeddings=config.seq_length,
        norm_eps=config.norm_eps,
        initializer_range=config.init_std,
        hidden_act="relu2",
        tie_word_embeddings=False,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": config.rope_theta,
            "partial_rotary_factor": config.rotary_fraction,
        },
        bos_token_id=special["bos_id"] if special["bos_id"] >= 0 else None,
        eos_token_id=special["eod_id"] if special["eod_id"] >= 0 else None,
        pad_token_id=special["pad_id"] if special["pad_id"] >= 0 else None,
        dtype=dtype,
        architectures=["NemotronForCausalLM"],
    )


def load_checkpoint_weights(spec: RunSpec, checkpoint: Path) -> Nemotron:
    """A plain (unsharded, CPU, float32) model holding a checkpoint's weights."""
    import torch.distributed.checkpoint as dcp

    from corpusmill.trainer.model import Nemotron

    model = Nemotron(spec.model)
    state = {"model": model.state_dict()}
    with warnings.catch_warnings():  # one process, no process group: exactly what is meant here
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(state, checkpoint_id=checkpoint)
    model.load_state_dict(state["model"])
    return model


def hf_state_dict(model: Nemotron, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Our parameter names under ``model.``, except the head, which transformers keeps at the top."""
    return {
        (name if name.startswith("lm_head.") else f"model.{name}"): tensor.detach().to(dtype).contiguous()
        for name, tensor in model.state_dict().items()
    }


def _write_tokenizer(spec: RunSpec, directory: Path) -> None:
    from transformers import AutoTokenizer

    shutil.copyfile(spec.tokenizer["model"], directory / MODEL_FILE)
    pieces = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
    ids = {"bos_token": "bos_id", "eos_token": "eod_id", "unk_token": "unk_id", "pad_token": "pad_id"}
    present = {name: piece for name, piece in pieces.items() if spec.tokenizer.get(ids[name], -1) >= 0}
    config = {**present, "add_bos_token": False, "add_eos_token": False, "model_max_length": spec.seq_length}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    AutoTokenizer.from_pretrained(directory).save_pretrained(directory)


def export_run(options: ExportOptions, *, executor: Executor, overwrite: bool = False) -> Exported:
    import torch
    from huggingface_hub import save_torch_state_dict

    run_dir = Path(options.run_dir)
    spec = RunSpec.read(run_dir)
    checkpoint = Path(options.checkpoint) if options.checkpoint else latest_checkpoint(run_dir / CHECKPOINT_DIR)
    if checkpoint is None:
        raise CorpusmillError(f"{run_dir}: no complete checkpoint yet; train first (`corpusmill train`)")
    out = Path(options.out)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists; choose another --out or pass --overwrite")
    executor.progress.note(f"[train export] {checkpoint} -> {out}")
    model = load_checkpoint_weights(spec, checkpoint)
    partial = out.with_name(f".{out.name}{TMP_MARKER}{uuid.uuid4().hex[:12]}")
    partial.mkdir(parents=True)
    try:
        hf_config(spec.model, spec.tokenizer, options.dtype).save_pretrained(partial)
        save_torch_state_dict(hf_state_dict(model, getattr(torch, options.dtype)), partial, max_shard_size=MAX_SHARD_SIZE)
        _write_tokenizer(spec, partial)
        if out.exists():
            shutil.rmtree(out)
        partial.rename(out)
    finally:
        if partial.exists():
            shutil.rmtree(partial)
    return Exported(out, checkpoint, sum(param.numel() for param in model.parameters()))


def render_export(exported: Exported) -> str:
    return (
        f"exported {exported.parameters:,} parameters from {exported.checkpoint} to {exported.out}; "
        f"load with transformers.AutoModelForCausalLM.from_pretrained({str(exported.out)!r})"
    )


COMMANDS = [
    StageCommand(
        ("train", "export"),
        "write a training checkpoint as a Hugging Face NemotronForCausalLM (safetensors, config, tokenizer)",
        ExportOptions,
        export_run,
        render_export,
    )
]
