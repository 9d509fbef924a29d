"""`corpusmill train` settings, declared once, and the run they resolve to (``RUN_DIR/run.json``).

Settings come, later ones winning, from the defaults below, a YAML file (``--config``), ``--preset``
and ``--set key=value``; a key is a field of :class:`TrainSettings`, ``model.FIELD`` (a
:class:`~corpusmill.trainer.presets.NemotronConfig` field overriding the preset's shape) or
``phases.N.FIELD`` (a :class:`PhaseSettings` field of phase ``N``, counted from 0). In YAML::

    preset: small
    micro_batch_size: 2
    global_batch_size: 256
    model: {num_layers: 8}
    phases:
      - {tokens: 20B}
      - {tokens: 1B, lr: 1.0e-4, warmup_steps: 0}

:func:`resolve_run` turns settings and the ``--blend`` directories into a :class:`RunSpec`: the model's
shape (its vocabulary from the tokenizer card), the tokenizer every shard must have been made with,
and one :class:`PhaseSpec` per blend. The spec is the run's identity: the same command re-run
resumes, other settings are refused (:func:`claim_run_dir`). ``--steps`` is not part of it, so a run
can be extended. How many steps a phase takes depends on the global batch, known once the world size
is: :class:`RunPlan`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from corpusmill.curation.atomic import TMP_MARKER, read_json
from corpusmill.curation.blend.spec import parse_token_count
from corpusmill.curation.errors import ConfigError, MissingFileError
from corpusmill.curation.megatron.encoder import file_sha256
from corpusmill.curation.blend.resolve import TRAIN
from corpusmill.curation.blend.trainer_blend import read_trainer_blend
from corpusmill.curation.megatron.manifest import TOKENIZED_FILE, read_tokenized_manifest
from corpusmill.curation.options import from_mapping, option
from corpusmill.curation.stage import StageConfigMismatch, json_config
from corpusmill.tokenizer.card import CARD_FILE, TokenizerCard
from corpusmill.tokenizer.codec import model_path
from corpusmill.trainer.data import open_blend, trainer_json_path
from corpusmill.trainer.presets import PRESETS, NemotronConfig, config_from_preset

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"  # one JSON line per logged step, written by rank 0
SCHEDULES = ("cosine", "wsd")


@dataclass(frozen=True, kw_only=True)
class PhaseSettings:
    """What one phase may set differently from the run's defaults (unset: inherited)."""

    tokens: float | None = option(
        None, parse=parse_token_count, help="tokens the phase trains on, e.g. 20B (default: the blend's planned tokens)"
    )
    lr: float | None = option(None, help="peak learning rate of the phase")
    min_lr: float | None = option(None, help="learning rate the phase decays to")
    warmup_steps: int | None = option(None, help="linear warm-up steps (default: the run's for phase 0, 0 after)")
    schedule: str | None = option(None, choices=SCHEDULES, help="cosine, or wsd (warm-up, stable, decay)")
    decay_fraction: float | None = option(None, help="wsd: the last fraction of the phase that decays")


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """Every scalar training setting; ``model`` and ``phases`` are nested (see the module docstring)."""

    preset: str = option("tiny", choices=tuple(PRESETS), help="model shape: tiny, small, 15b or 340b")
    tokenizer: str | None = option(
        None, help="`tokenizer train` output (card.json + tokenizer.model); default: the one the shards name"
    )
    seq_length: int | None = option(None, help="tokens per sample (default: the preset's)")
    micro_batch_size: int = option(4, help="samples per device per forward/backward")
    global_batch_size: int | None = option(
        None, help="samples per optimizer step, a multiple of micro_batch_size x world size (default: no accumulation)"
    )
    lr: float = option(3e-4, help="peak learning rate")
    min_lr: float = option(3e-5, help="learning rate at the end of each phase's decay")
    warmup_steps: int = option(100, help="linear warm-up steps at the start of the first phase")
    schedule: str = option("cosine", choices=SCHEDULES, help="cosine, or wsd (warm-up, stable, decay)")
    decay_fraction: float = option(0.2, help="wsd: the last fraction of each phase, decayed linearly to min_lr")
    weight_decay: float = option(0.1, help="AdamW weight decay (none on norms)")
    adam_beta1: float = option(0.9, help="AdamW beta1")
    adam_beta2: float = option(0.95, help="AdamW beta2")
    adam_eps: float = option(1e-8, help="AdamW epsilon")
    grad_clip: float = option(1.0, help="clip the global gradient norm to this")
    seed: int = option(1234, help="seed of the initial weights and of the data order")
    checkpoint_every: int = option(500, help="steps between checkpoints (one is also written at --steps)")
    keep_checkpoints: int = option(2, help="complete checkpoints kept; older ones are deleted")
    activation_checkpointing: bool = option(False, help="recompute each block's activations in the backward")
    compile: bool = option(False, help="torch.compile each block")
    fused_kernels: bool | None = option(
        None, help="the fused Triton kernels: true, false, or null (default) for on where Triton compiles (GPUs)"
    )
    peak_tflops: float | None = option(
        None, help="peak bf16 dense TFLOP/s per device for MFU (default: 989 on H100/H200; none elsewhere)"
    )

    def __post_init__(self) -> None:
        positive = ("micro_batch_size", "lr", "checkpoint_every", "keep_checkpoints", "grad_clip")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"`{name}` must be positive, got {getattr(self, name)}")
        if self.global_batch_size is not None and self.global_batch_size <= 0:
            raise ConfigError(f"`global_batch_size` must be positive, got {self.global_batch_size}")
        if self.seq_length is not None and self.seq_length <= 0:
            raise ConfigError(f"`seq_length` must be positive, got {self.seq_length}")
        if not 0 <= self.min_lr <= self.lr:
            raise ConfigError(f"`min_lr` {self.min_lr} must lie between 0 and `lr` {self.lr}")
        if not 0 < self.decay_fraction <= 1:
            raise ConfigError(f"`decay_fraction` must be in (0, 1], got {self.decay_fraction}")


@dataclass(frozen=True)
class PhaseSpec:
    """One resolved phase: its blend, token budget and learning-rate schedule."""

    index: int
    blend: str  # absolute path of its trainer.json
    name: str  # the blend spec's phase, e.g. pretrain
    tokens: float
    lr: float
    min_lr: float
    warmup_steps: int
    schedule: str
    decay_fraction: float


@dataclass(frozen=True)
class RunSpec:
    """Everything that identifies a training run, as ``run.json`` records it."""

    settings: TrainSettings
    model: NemotronConfig
    tokenizer: dict[str, Any]  # sha256, model (path), card (path), vocab_size, eod_id
    phases: tuple[PhaseSpec, ...]

    @property
    def seq_length(self) -> int:
        return self.model.seq_length

    def to_dict(self) -> dict[str, Any]:
        return json_config(
            {
                "settings": dataclasses.asdict(self.settings),
                "model": dataclasses.asdict(self.model),
                "tokenizer": self.tokenizer,
                "phases": [dataclasses.asdict(phase) for phase in self.phases],
            }
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSpec:
        return cls(
            TrainSettings(**data["settings"]),
            NemotronConfig(**data["model"]),
            dict(data["tokenizer"]),
            tuple(PhaseSpec(**phase) for phase in data["phases"]),
        )

    @classmethod
    def read(cls, run_dir: str | Path) -> RunSpec:
        path = Path(run_dir) / RUN_FILE
        if not path.is_file():
            raise MissingFileError(f"{run_dir}: no {RUN_FILE}; start the run with `corpusmill train --out {run_dir}`")
        return cls.from_dict(read_json(path))


# --- settings from YAML and --set ---------------------------------------------------------------


def _parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """``--set a=1 --set model.b=2 --set phases.1.c=x`` as the nested mapping a YAML file would hold."""
    nested: dict[str, Any] = {}
    for item in overrides:
        key, equals, text = item.partition("=")
        if not equals or not key.strip():
            raise ConfigError(f"--set {item!r}: write KEY=VALUE, e.g. --set lr=3e-4")
        value = yaml.safe_load(text) if text.strip() else None
        parts = key.strip().split(".")
        if parts[0] == "phases":
            if len(parts) != 3 or not parts[1].isdigit():
                raise ConfigError(f"--set {item!r}: a phase key is phases.N.FIELD, e.g. phases.1.tokens=2B")
            nested.setdefault("phases", {}).setdefault(int(parts[1]), {})[parts[2]] = value
        elif parts[0] == "model":
            if len(parts) != 2:
                raise ConfigError(f"--set {item!r}: a model key is model.FIELD, e.g. model.num_layers=4")
            nested.setdefault("model", {})[parts[1]] = value
        elif len(parts) == 1:
            nested[key.strip()] = value
        else:
            raise ConfigError(f"--set {item!r}: unknown key; nested keys start with model. or phases.")
    return nested


def _read_config_file(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    if not Path(path).is_file():
        raise MissingFileError(f"--config {path}: no such file")
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"--config {path}: not YAML ({error})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: must hold a mapping of settings")
    phases = data.get("phases", [])
    if not isinstance(phases, list) or not all(isinstance(phase, dict) for phase in phases):
        raise ConfigError(f"--config {path}: `phases` must be a list of mappings, one per --blend")
    if not isinstance(data.get("model", {}), dict):
        raise ConfigError(f"--config {path}: `model` must be a mapping of NemotronConfig fields")
    return {**data, "phases": dict(enumerate(phases))}


def load_settings(
    config_file: str | None, preset: str | None, overrides: Sequence[str]
) -> tuple[TrainSettings, dict[str, Any], dict[int, PhaseSettings]]:
    """The run's scalar settings, its model-shape overrides and its per-phase settings."""
    from_file = _read_config_file(config_file)
    from_cli = _parse_overrides(overrides)
    scalars = {key: value for key, value in from_file.items() if key not in ("model", "phases")}
    scalars.update({key: value for key, value in from_cli.items() if key not in ("model", "phases")})
    if preset is not None:
        scalars["preset"] = preset
    where = f"--config {config_file}" if config_file else "settings"
    settings = from_mapping(TrainSettings, scalars, lambda key: f"{where} (or --set)")
    model = {**from_file.get("model", {}), **from_cli.get("model", {})}
    shape_fields = {field.name for field in dataclasses.fields(NemotronConfig)} - {"vocab_size", "seq_length"}
    unknown = sorted(set(model) - shape_fields)
    if unknown:
        raise ConfigError(
            f"model.{unknown[0]}: not a model setting; choose from {', '.join(sorted(shape_fields))} "
            "(vocab_size comes from the tokenizer card, seq_length is a top-level setting)"
        )
    phase_maps: dict[int, dict[str, Any]] = {}
    for source in (from_file.get("phases", {}), from_cli.get("phases", {})):
        for number, values in source.items():
            phase_maps.setdefault(number, {}).update(values)
    phases = {
        number: from_mapping(PhaseSettings, values, lambda key, number=number: f"phases.{number}")
        for number, values in phase_maps.items()
    }
    return settings, model, phases


# --- the run ------------------------------------------------------------------------------------


def _tokenizer_dir(settings: TrainSettings, first_blend: str) -> Path:
    """The `tokenizer train` output the run uses: as set, or the one the first phase's shards were made with."""
    if settings.tokenizer is not None:
        return Path(settings.tokenizer).resolve()
    prefix = read_trainer_blend(trainer_json_path(first_blend)).splits[TRAIN][0][0]
    for directory in prefix.parents:
        if (directory / TOKENIZED_FILE).is_file():
            return Path(read_tokenized_manifest(directory).tokenizer["model_path"]).resolve().parent
    raise ConfigError(f"{prefix}: no {TOKENIZED_FILE} above it names its tokenizer; pass --set tokenizer=DIR")


def _tokenizer_record(directory: Path) -> tuple[dict[str, Any], Path]:
    model = model_path(directory)
    card_path = model.parent / CARD_FILE
    card = TokenizerCard.read(card_path)
    sha256 = file_sha256(model)
    if card.model_sha256 != sha256:
        raise ConfigError(f"{model}: its sha256 differs from the one {card_path} records; re-run `tokenizer train`")
    record = {
        "sha256": sha256,
        "model": str(model),
        "card": str(card_path),
        "vocab_size": card.vocab_size,
        "eod_id": card.special_ids.get("</s>", -1),
        "bos_id": card.special_ids.get("<s>", -1),
        "pad_id": card.special_ids.get("<pad>", -1),
        "unk_id": card.special_ids.get("<unk>", -1),
    }
    return record, card_path


def resolve_run(
    blends: Sequence[str], config_file: str | None = None, preset: str | None = None, overrides: Sequence[str] = ()
) -> RunSpec:
    """Settings and blends checked and resolved into the run's spec; every shard's tokenizer checked."""
    if not blends:
        raise ConfigError("--blend: give at least one `corpusmill blend resolve` output, one per phase")
    settings, model_overrides, phase_settings = load_settings(config_file, preset, overrides)
    extra = sorted(number for number in phase_settings if number >= len(blends))
    if extra:
        raise ConfigError(f"phases.{extra[0]}: there are only {len(blends)} phases (one per --blend)")
    tokenizer, card_path = _tokenizer_record(_tokenizer_dir(settings, blends[0]))
    model = config_from_preset(settings.preset, card_path)
    try:
        model = replace(model, **model_overrides, seq_length=settings.seq_length or model.seq_length)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"model settings: {error}") from None
    phases = []
    for number, blend in enumerate(blends):
        resolved = open_blend(blend, tokenizer["sha256"])
        chosen = phase_settings.get(number, PhaseSettings())

        def pick(name: str, default: Any, chosen: PhaseSettings = chosen) -> Any:
            value = getattr(chosen, name)
            return default if value is None else value

        phases.append(
            PhaseSpec(
                index=number,
                blend=str(trainer_json_path(blend)),
                name=resolved.phase,
                tokens=pick("tokens", resolved.planned_tokens),
                lr=pick("lr", settings.lr),
                min_lr=pick("min_lr", settings.min_lr),
                warmup_steps=pick("warmup_steps", settings.warmup_steps if number == 0 else 0),
                schedule=pick("schedule", settings.schedule),
                decay_fraction=pick("decay_fraction", settings.decay_fraction),
            )
        )
    return RunSpec(settings, model, tokenizer, tuple(phases))


def _first_difference(recorded: Any, wanted: Any, path: str = "") -> str:
    if isinstance(recorded, dict) and isinstance(wanted, dict):
        for key in sorted(set(recorded) | set(wanted)):
            if recorded.get(key) != wanted.get(key):
                return _first_difference(recorded.get(key), wanted.get(key), f"{path}.{key}" if path else key)
    if isinstance(recorded, list) and isinstance(wanted, list) and len(recorded) == len(wanted):
        for number, (old, new) in enumerate(zip(recorded, wanted)):
            if old != new:
                return _first_difference(old, new, f"{path}.{number}")
    return f"{path or 'run'} was {recorded!r}, now {wanted!r}"


def claim_run_dir(run_dir: Path, spec: RunSpec, overwrite: bool = False) -> bool:
    """Record ``spec`` as the run in ``run_dir``, or check it is the one recorded; True if it was.

    ``run.json`` is published with an exclusive link, so the nodes of a multi-node launch, each running
    this on a shared file system, agree on one record without racing.
    """
    if overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    path = run_dir / RUN_FILE
    wanted = spec.to_dict()
    if not path.exists():
        if run_dir.exists() and any(TMP_MARKER not in entry.name for entry in run_dir.iterdir()):
            raise StageConfigMismatch(f"{run_dir} is not empty and holds no {RUN_FILE}; choose another --out")
        run_dir.mkdir(parents=True, exist_ok=True)
        partial = run_dir / f"{RUN_FILE}{TMP_MARKER}{uuid.uuid4().hex[:12]}"
        partial.write_text(json.dumps(wanted, indent=2, sort_keys=True) + "\n")
        try:
            os.link(partial, path)
            return False
        except FileExistsError:
            pass
        finally:
            partial.unlink()
    recorded = read_json(path)
    if recorded != wanted:
        raise StageConfigMismatch(
            f"{run_dir} holds a run with other settings ({_first_difference(recorded, wanted)}); re-run with the "
            "same settings to resume, or pass --overwrite (or another --out) to start over"
        )
    return True


# --- steps and learning rates -------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedPhase:
    spec: PhaseSpec
    start_step: int
    steps: int

    @property
    def end_step(self) -> int:
        return self.start_step + self.steps


class RunPlan:
    """Steps per phase for a global batch, and the learning rate at every step."""

    def __init__(self, spec: RunSpec, global_batch: int):
        self.global_batch = global_batch
        self.tokens_per_step = global_batch * spec.seq_length
        self.phases: list[PlannedPhase] = []
        start = 0
        for phase in spec.phases:
            steps = max(1, math.ceil(phase.tokens / self.tokens_per_step))
            self.phases.append(PlannedPhase(phase, start, steps))
            start += steps

    @property
    def total_steps(self) -> int:
        return self.phases[-1].end_step

    def phase_at(self, step: int) -> PlannedPhase:
        for phase in self.phases:
            if step < phase.end_step:
                return phase
        return self.phases[-1]

    def lr_at(self, step: int) -> float:
        """Linear warm-up to the phase's peak, then cosine to its minimum, or stable then linear decay (wsd)."""
        phase = self.phase_at(step)
        spec, position = phase.spec, step - phase.start_step
        warmup = min(spec.warmup_steps, phase.steps - 1)
        if position < warmup:
            return spec.lr * (position + 1) / warmup
        if spec.schedule == "wsd":
            decay_steps = max(1, round(phase.steps * spec.decay_fraction))
            decay_start = phase.steps - decay_steps
            if position < decay_start:
                return spec.lr
            progress = (position - decay_start + 1) / decay_steps
            return spec.lr - (spec.lr - spec.min_lr) * progress
        progress = (position - warmup) / max(1, phase.steps - warmup - 1)
        return spec.min_lr + (spec.lr - spec.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def global_batch_size(settings: TrainSettings, world_size: int) -> int:
    """Samples per step, checked to split evenly into micro-batches over ``world_size`` devices."""
    per_pass = settings.micro_batch_size * world_size
    size = settings.global_batch_size or per_pass
    if size % per_pass:
        raise ConfigError(
            f"`global_batch_size` {size} is not a multiple of micro_batch_size x world size = {per_pass}"
        )
    return size
