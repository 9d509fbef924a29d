"""`corpusmill train` end to end on CPU: 2 gloo processes of FSDP2 on the pipeline's shards, resume, export."""

import json
import math
from pathlib import Path

import pytest
import sentencepiece as spm
import torch
from torch.distributed.checkpoint import FileSystemReader

from corpusmill.pipelines.cli import main
from corpusmill.tokenizer.card import TokenizerCard
from corpusmill.trainer.checkpoint_dirs import latest_checkpoint
from corpusmill.trainer.config import RunSpec
from corpusmill.trainer.export import load_checkpoint_weights

STEPS = 12
# 2 processes x 4 samples x 128 tokens = 1,024 tokens a step: phase 0 takes 8 steps, phase 1 then 4.
SETTINGS = [
    "micro_batch_size=4",
    "phases.0.tokens=8192",
    "phases.1.tokens=4096",
    "phases.1.lr=2e-3",
    "warmup_steps=2",
    "lr=3e-3",
    "checkpoint_every=4",
]
METRIC_KEYS = {"step", "phase", "loss", "lr", "tokens", "tokens_per_s", "mfu", "max_memory_bytes"}


def _train(shards, run_dir: Path, *extra: str) -> int:
    arguments = ["train", "--blend", str(shards.pretrain), "--blend", str(shards.annealing), "--out", str(run_dir)]
    arguments += ["--preset", "tiny", "--nproc-per-node", "2", *extra]
    for setting in SETTINGS:
        arguments += ["--set", setting]
    return main(arguments)


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def straight_run(pipeline_shards, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    assert _train(pipeline_shards, run_dir, "--steps", str(STEPS)) == 0
    return run_dir


def test_two_processes_train_the_tiny_preset_and_the_loss_falls(straight_run, pipeline_shards):
    metrics = _metrics(straight_run)
    assert [m["step"] for m in metrics] == list(range(1, STEPS + 1))
    assert all(METRIC_KEYS <= set(m) for m in metrics)
    vocab = TokenizerCard.read(pipeline_shards.tokenizer).vocab_size
    assert metrics[0]["loss"] == pytest.approx(math.log(vocab), rel=0.02)  # uniform at init
    assert max(m["loss"] for m in metrics[-3:]) < metrics[0]["loss"] - 0.5
    assert [m["tokens"] for m in metrics] == [1024 * step for step in range(1, STEPS + 1)]
    assert metrics[0]["mfu"] is None and metrics[-1]["max_memory_bytes"] > 0  # no known peak for a CPU


def test_phases_switch_at_a_step_boundary_with_their_own_schedule(straight_run):
    metrics = _metrics(straight_run)
    assert [m["phase"] for m in metrics] == [0] * 8 + [1] * 4
    lrs = [m["lr"] for m in metrics]
    assert lrs[:2] == [1.5e-3, 3e-3]  # warm-up
    assert lrs[7] == pytest.approx(3e-5) and lrs[8] == 2e-3 and lrs[11] == pytest.approx(3e-5)
    assert all(later <= earlier for earlier, later in zip(lrs[1:8], lrs[2:8]))
    checkpoint = latest_checkpoint(straight_run / "checkpoints")
    keys = set(FileSystemReader(checkpoint).read_metadata().state_dict_metadata)
    assert {"train.phase", "train.next_sample", "train.phase_starts", "scheduler.lr"} <= keys
    for rank in (0, 1):
        assert {f"rng.rank_{rank}.{name}" for name in ("python", "numpy", "torch")} <= keys


def test_a_real_tokenizer_card_sets_the_vocabulary(straight_run, pipeline_shards):
    spec = RunSpec.read(straight_run)
    vocab = TokenizerCard.read(pipeline_shards.tokenizer).vocab_size
    assert spec.model.vocab_size == vocab == 2000 and spec.model.hidden_size == 64
    model = load_checkpoint_weights(spec, latest_checkpoint(straight_run / "checkpoints"))
    assert model.embed_tokens.weight.shape[0] == model.lm_head.weight.shape[0] == vocab


def test_resume_is_bit_exact_across_a_phase_switch(straight_run, pipeline_shards, tmp_path):
    run_dir = tmp_path / "run"
    assert _train(pipeline_shards, run_dir, "--steps", str(STEPS // 2)) == 0
    (run_dir / "checkpoints" / ".step_00000007.tmp-killed").mkdir()  # a save that never finished
    assert _train(pipeline_shards, run_dir, "--steps", str(STEPS)) == 0
    straight, resumed = _metrics(straight_run), _metrics(run_dir)
    assert [m["step"] for m in resumed] == list(range(1, STEPS + 1))
    assert [m["loss"] for m in resumed] == [m["loss"] for m in straight]  # bit for bit, step for step
    assert [m["lr"] for m in resumed] == [m["lr"] for m in straight]
    assert not (run_dir / "checkpoints" / ".step_00000007.tmp-killed").exists()


def test_other_settings_in_the_same_run_directory_are_refused(straight_run, pipeline_shards, capsys):
    capsys.readouterr()
    assert _train(pipeline_shards, straight_run, "--set", "adam_beta2=0.99") == 2
    error = capsys.readouterr().err.strip()
    assert "settings.adam_beta2" in error and "--overwrite" in error and len(error.splitlines()) == 1


def test_export_round_trips_through_transformers(straight_run, pipeline_shards, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf_dir = tmp_path / "hf"
    assert main(["train", "export", str(straight_run), "--out", str(hf_dir)]) == 0
    assert {"config.json", "model.safetensors", "tokenizer.model", "tokenizer.json"} <= {p.name for p in hf_dir.iterdir()}
    spec = RunSpec.read(straight_run)
    ours = load_checkpoint_weights(spec, latest_checkpoint(straight_run / "checkpoints"))
    theirs = AutoModelForCausalLM.from_pretrained(hf_dir)
    assert type(theirs).__name__ == "NemotronForCausalLM"

    text = Path("/usr/share/common-licenses/GPL-3").read_text()[:3000]
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert ids == spm.SentencePieceProcessor(model_file=spec.tokenizer["model"]).encode(text)
    input_ids = torch.tensor([ids[: spec.seq_length], ids[spec.seq_length : 2 * spec.seq_length]])
    with torch.no_grad():
        expected = ours(input_ids)
        actual = theirs(input_ids).logits
    assert actual.dtype == torch.float32 and expected.abs().max() > 0
    assert ((actual - expected).abs().max() / expected.abs().max()).item() <= 1e-4


def test_activation_checkpointing_changes_neither_losses_nor_checkpoint_names(pytorch_fallback):
    from dataclasses import replace

    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    from corpusmill.trainer.config import TrainSettings
    from corpusmill.trainer.presets import PRESETS
    from corpusmill.trainer.train import build_model, build_optimizer, init_distributed, train_step

    runtime = init_distributed()  # a group of one, in this process
    try:
        config = replace(PRESETS["tiny"], vocab_size=300, seq_length=32)
        tokens = torch.randint(0, 300, (2, 33), generator=torch.Generator().manual_seed(0))
        runs = {}
        for checkpointing in (False, True):
            torch.manual_seed(0)
            model = build_model(config, runtime, activation_checkpointing=checkpointing)
            optimizer = build_optimizer(model, TrainSettings())
            losses = [train_step(model, optimizer, [tokens], 1.0)[0].item() for _ in range(3)]
            runs[checkpointing] = (losses, list(get_model_state_dict(model)))
    finally:
        dist.destroy_process_group()
    assert runs[True] == runs[False]
    assert "layers.0.self_attn.q_proj.weight" in runs[True][1]


def test_multi_node_launch_uses_torchruns_c10d_rendezvous(tmp_path):
    from corpusmill.pipelines.train import TrainOptions, torchrun_command

    options = TrainOptions(
        blend=("b",), out="r", nproc_per_node=8, nnodes="2:4", rdzv_endpoint="node0:29500", rdzv_id="job7", steps=10
    )
    command = torchrun_command(options, tmp_path)
    assert command[1:4] == ["-m", "torch.distributed.run", "--nproc-per-node=8"]
    assert {"--nnodes=2:4", "--rdzv-backend=c10d", "--rdzv-endpoint=node0:29500", "--rdzv-id=job7"} <= set(command)
    assert command[-5:] == ["-m", "corpusmill.pipelines.train_worker", str(tmp_path), "--steps", "10"]
    single = torchrun_command(TrainOptions(blend=("b",), out="r"), tmp_path)
    assert "--standalone" in single and not any(word.startswith("--rdzv") for word in single)
