"""`corpusmill` command line: one sub-command per stage, registered in COMMANDS."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence


# (words, module, help). A module provides add_arguments(parser) and main(args).
COMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("ingest",), "corpusmill.curation.ingest.stage", "normalise JSONL / Parquet / file trees into a document dataset"),
    (("dedup", "exact"), "corpusmill.curation.dedup.exact_stage", "remove documents with identical text (smallest id kept)"),
    (("dedup", "fuzzy"), "corpusmill.curation.dedup.fuzzy_stage", "remove near-duplicates: MinHash LSH, verified pairs, smallest id per component kept"),
    (("classify",), "corpusmill.curation.classify.stage", "label language, category (english/multilingual/code) and code language"),
    (("tokenizer", "sample"), "corpusmill.tokenizer.sample_stage", "draw a seeded, up-sampled training sample from classified datasets"),
    (("tokenizer", "train"), "corpusmill.tokenizer.train_stage", "train a byte-fallback SentencePiece BPE tokenizer on a sample"),
    (("tokenizer", "eval"), "corpusmill.tokenizer.eval_stage", "bytes/token, tokens/word, byte fallback and round trip per language"),
    (("tokenize",), "corpusmill.curation.megatron.stage", "encode documents into Megatron .bin/.idx shards, one prefix per blend component"),
    (("blend", "resolve"), "corpusmill.curation.blend.stage", "turn a blend spec and tokenized shards into per-prefix weights for Megatron and the bundled trainer"),
    (("demo",), "corpusmill.pipelines.demo", "assemble a small real corpus from this machine and run every stage on it"),
    (("run",), "corpusmill.pipelines.pipeline", "run a pipeline YAML (pipelines/*.yaml) stage by stage"),
]
GROUP_HELP = {"dedup": "duplicate removal stages", "tokenizer": "tokenizer sampling, training and evaluation", "blend": "blend specifications resolved over tokenized shards"}


class CliError(Exception):
    """Errors whose message is the whole story: printed without a traceback."""


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ray-address", default=None, help="Ray cluster to use (default: $RAY_ADDRESS, else an embedded local Ray)"
    )
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs for an embedded Ray (default: all)")
    parser.add_argument("--overwrite", action="store_true", help="discard an existing output and start over")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corpusmill", description="Curate, tokenize and blend LLM pretraining data.")
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for words, module_name, help_text in COMMANDS:
        container = top
        for word in words[:-1]:
            if word not in groups:
                group = top.add_parser(word, help=GROUP_HELP.get(word))
                groups[word] = group.add_subparsers(dest=f"{word}_command", required=True, metavar="COMMAND")
            container = groups[word]
        sub = container.add_parser(words[-1], help=help_text, description=help_text)
        module = importlib.import_module(module_name)
        module.add_arguments(sub)
        _add_common(sub)
        sub.set_defaults(handler=module.main)
    return parser


def _explained_cause(error: BaseException, explained: tuple[type[BaseException], ...]) -> BaseException | None:
    """The user-facing error inside ``error``, also when a Ray worker raised it and Ray wrapped it."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, explained):
            return current
        seen.add(id(current))
        current = getattr(current, "cause", None) or current.__cause__
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from corpusmill.curation.dataset import DatasetError
    from corpusmill.curation.ingest.discover import InputError
    from corpusmill.curation.stage import StageConfigMismatch
    from corpusmill.curation.stats import AccountingError
    from corpusmill.pipelines.execution import configure_ray

    configure_ray(args.ray_address, args.num_cpus)
    explained = (CliError, DatasetError, InputError, StageConfigMismatch, AccountingError, FileNotFoundError)
    try:
        manifest = args.handler(args)
    except Exception as error:
        cause = _explained_cause(error, explained)
        if cause is None:
            raise
        print(f"corpusmill: error: {cause}", file=sys.stderr)
        return 2
    out = getattr(args, "out", None)
    if manifest is not None and out is not None:
        from corpusmill.pipelines.report import summarize_output

        print(summarize_output(out))
    return 0


if __name__ == "__main__":
    # Import ourselves under our real name, so stage modules and this entry share one CliError.
    from corpusmill.pipelines.cli import main as package_main

    sys.exit(package_main())
