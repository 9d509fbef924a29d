"""`corpusmill blend resolve SPEC --shards DIR [--phase P] [--tokens N]`: print and write a concrete blend."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from corpusmill.curation.blend.inventory import BlendError, load_inventory
from corpusmill.curation.blend.megatron_args import write_megatron_args
from corpusmill.curation.blend.resolve import TRAIN, Resolution, resolve
from corpusmill.curation.blend.spec import BlendSpecError, load_spec, parse_token_count
from corpusmill.curation.blend.trainer_blend import TRAINER_FILE, write_trainer_blend
from corpusmill.curation.megatron.encoder import TokenizerModelError

_SCALES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


def human_count(value: float) -> str:
    for scale, suffix in _SCALES:
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def format_resolution(resolution: Resolution) -> str:
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
    for split, held_out in resolution.splits.items():
        if split != TRAIN and held_out:
            lines.append(f"{split}: {len(held_out)} held-out prefixes, weighted like the training groups")
    return "\n".join(lines)


def resolve_command(args: argparse.Namespace) -> Resolution:
    spec = load_spec(args.spec)
    inventory = load_inventory(args.shards, args.tokenizer)
    resolution = resolve(spec, inventory, args.phase, args.tokens, args.seq_length)
    out = Path(args.out) if args.out else Path(args.shards[0]) / "blends" / f"{spec.name}-{resolution.phase}"
    print(format_resolution(resolution))
    for warning in resolution.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.strict and resolution.warnings:
        raise BlendError(f"{len(resolution.warnings)} warning(s) and --strict: nothing written")
    written = write_megatron_args(resolution, out) + [write_trainer_blend(resolution, out / TRAINER_FILE)]
    print("wrote " + ", ".join(str(path) for path in written))
    return resolution


def _token_count(text: str) -> float:
    try:
        return parse_token_count(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="blend spec YAML, e.g. blend_specs/nemotron4.yaml")
    parser.add_argument("--shards", required=True, action="append", help="a `corpusmill tokenize` output (repeatable)")
    parser.add_argument("--phase", default=None, help="phase of the spec to resolve (default: its first)")
    parser.add_argument(
        "--tokens",
        type=_token_count,
        default=None,
        help="tokens the phase trains on, e.g. 1e12, 8T, 300B (default: the spec's)",
    )
    parser.add_argument(
        "--seq-length", type=int, default=None, help="sequence length for the no-samples check (default: the spec's)"
    )
    parser.add_argument(
        "--tokenizer", default=None, help="refuse shards not made with this tokenizer (.model or its directory)"
    )
    parser.add_argument(
        "--out",
        default=None,
        help="where to write data_path.txt, per_split.json, trainer.json (default: SHARDS/blends/SPEC-PHASE)",
    )
    parser.add_argument("--strict", action="store_true", help="treat warnings as errors and write nothing")


def main(args: argparse.Namespace) -> None:
    from corpusmill.pipelines.cli import CliError

    try:
        resolve_command(args)
    except (BlendError, BlendSpecError, TokenizerModelError) as error:
        raise CliError(str(error)) from error
