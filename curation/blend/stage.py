"""`corpusmill blend resolve SPEC --shards DIR [--phase P] [--tokens N]`: resolve and write a concrete blend.

The resolution (every prefix's weight, tokens drawn and epochs) comes back as data with
the files it was written to; ``format_resolution`` is what the CLI prints. Warnings
go to the executor's progress notes; with ``--strict`` they stop the run before anything
is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from corpusmill.curation import output_lock
from corpusmill.curation.blend.inventory import BlendError, load_inventory
from corpusmill.curation.blend.megatron_args import write_megatron_args
from corpusmill.curation.blend.resolve import TRAIN, Resolution, resolve
from corpusmill.curation.blend.spec import load_spec, parse_token_count
from corpusmill.curation.blend.trainer_blend import TRAINER_FILE, write_trainer_blend
from corpusmill.curation.command import StageCommand
from corpusmill.curation.errors import ConfigError
from corpusmill.curation.executor import Executor
from corpusmill.curation.options import APPEND, option
from corpusmill.curation.stage import PROGRESS_DIR


@dataclass(frozen=True, kw_only=True)
class BlendResolveOptions:
    """`corpusmill blend resolve SPEC --shards DIR [--shards DIR ...] [--phase P] [--tokens N] ...`."""

    spec: str = option(positional=True, help="blend spec YAML, e.g. blend_specs/nemotron4.yaml")
    shards: tuple[str, ...] = option(help="a `corpusmill tokenize` output (repeatable)", cli=APPEND)
    phase: str | None = option(None, help="phase of the spec to resolve (default: its first)")
    tokens: float | None = option(
        None, parse=parse_token_count, help="tokens the phase trains on, e.g. 1e12, 8T, 300B (default: the spec's)"
    )
    seq_length: int | None = option(None, help="sequence length for the no-samples check (default: the spec's)")
    tokenizer: str | None = option(None, help="refuse shards not made with this tokenizer (.model or its directory)")
    out: str | None = option(
        None, help="where to write data_path.txt, per_split.json, trainer.json (default: SHARDS/blends/SPEC-PHASE)"
    )
    strict: bool = option(False, help="treat warnings as errors and write nothing")

    def __post_init__(self) -> None:
        if not self.shards:
            raise ConfigError("--shards: give at least one `corpusmill tokenize` output")
        named: dict[Path, str] = {}
        for shards in self.shards:
            if Path(shards).resolve() in named:
                # Its prefixes would be counted twice: trainer.json's weights halved, data_path.txt's summed.
                first = named[Path(shards).resolve()]
                raise ConfigError(f"--shards {shards}: given twice (as --shards {first}); give each tokenize output once")
            named[Path(shards).resolve()] = shards
        if self.seq_length is not None and self.seq_length < 1:
            raise ConfigError(f"--seq-length {self.seq_length}: must be at least 1 (tokens per training sequence)")
        if self.tokens is not None:
            try:
                parse_token_count(self.tokens)
            except ValueError as error:
                raise ConfigError(f"--tokens {error}") from None


@dataclass(frozen=True)
class ResolvedBlend:
    """A resolution and the files it was written to."""

    resolution: Resolution
    written: list[Path]


_SCALES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


def human_count(value: float) -> str:
    for scale, suffix in _SCALES:
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def resolution_table(resolution: Resolution) -> str:
    """The table a person reads before training: where every token comes from, and how often."""
    draws = resolution.splits[TRAIN]
    names = [draw.prefix.name for draw in draws] + [prefix.name for prefix, _ in resolution.not_drawn]
    width = max(len("prefix"), *map(len, names))
    group_width = max(len("group"), *(len(draw.group) for draw in draws))
    title = (
        f"blend {resolution.spec}, phase {resolution.phase}: {human_count(resolution.total_tokens)} tokens "
        f"(from {resolution.tokens_origin}), sequences of {resolution.seq_length}"
    )
    lines = [
        title,
        f"{'prefix':<{width}}  {'group':<{group_width}}  {'available':>10}  {'share':>8}  {'drawn':>10}  {'epochs':>9}",
    ]
    for draw in draws:
        lines.append(
            f"{draw.prefix.name:<{width}}  {draw.group:<{group_width}}  {human_count(draw.prefix.tokens):>10}  "
            f"{draw.weight:>8.3%}  {human_count(draw.tokens_drawn):>10}  {draw.epochs:>9.3g}"
        )
    for prefix, reason in resolution.not_drawn:
        lines.append(
            f"{prefix.name:<{width}}  {'-':<{group_width}}  {human_count(prefix.tokens):>10}  not drawn: {reason}"
        )
    if resolution.unselected_report():
        lines.append(resolution.unselected_report())
    for split, held_out in resolution.splits.items():
        if split != TRAIN and held_out:
            lines.append(f"{split}: {len(held_out)} held-out prefixes, weighted like the training groups")
    return "\n".join(lines)


def resolve_blend(options: BlendResolveOptions, *, executor: Executor, overwrite: bool = False) -> ResolvedBlend:
    """Resolve ``options.spec`` over the shards and write it for Megatron and the bundled trainer.

    Nothing here runs units: ``executor`` only carries the warnings (``executor.progress.note``).
    The files are rewritten on every run, so ``overwrite`` changes nothing; the output lock keeps a
    second run from writing into the same directory at the same time (a mix of two resolutions).
    """
    spec = load_spec(options.spec)
    inventory = load_inventory(options.shards, options.tokenizer)
    resolution = resolve(spec, inventory, options.phase, options.tokens, options.seq_length)
    for warning in resolution.warnings:
        executor.progress.note(f"warning: {warning}")
    if resolution.unselected_report():
        executor.progress.note(resolution.unselected_report())
    if options.strict and resolution.warnings:
        raise BlendError(f"{len(resolution.warnings)} warning(s) and --strict: nothing written")
    out = Path(options.out) if options.out else Path(options.shards[0]) / "blends" / f"{spec.name}-{resolution.phase}"
    with output_lock.held(out / PROGRESS_DIR, out, "blend resolve"):
        written = write_megatron_args(resolution, out) + [write_trainer_blend(resolution, out / TRAINER_FILE)]
    return ResolvedBlend(resolution, written)


def format_resolution(resolved: ResolvedBlend) -> str:
    """What the CLI prints: the resolution table, then where it was written."""
    written = "wrote " + ", ".join(str(path) for path in resolved.written)
    return f"{resolution_table(resolved.resolution)}\n{written}"


COMMANDS = [
    StageCommand(
        ("blend", "resolve"),
        "turn a blend spec and tokenized shards into per-prefix weights for Megatron and the bundled trainer",
        BlendResolveOptions,
        resolve_blend,
        format_resolution,
    )
]
