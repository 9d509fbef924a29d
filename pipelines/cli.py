"""`corpusmill` command line: one sub-command per stage, built from the stages' own declarations.

Each module in COMMAND_MODULES exports ``COMMANDS``, a list of
``corpusmill.curation.command.StageCommand``; their options dataclasses give the flags.
This is the one place that turns user errors (``CorpusmillError``) into a one-line
message and exit status 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from corpusmill.curation.command import StageCommand
from corpusmill.curation.errors import CorpusmillError
from corpusmill.curation.executor import Executor, SerialExecutor
from corpusmill.curation.stage import explain_write_error
from corpusmill.pipelines.arguments import add_arguments, from_cli

COMMAND_MODULES = (
    "corpusmill.curation.ingest.stage",
    "corpusmill.curation.dedup.exact_stage",
    "corpusmill.curation.dedup.fuzzy_stage",
    "corpusmill.curation.classify.stage",
    "corpusmill.curation.quality.lm_train_stage",
    "corpusmill.curation.quality.stage",
    "corpusmill.tokenizer.sample_stage",
    "corpusmill.tokenizer.train_stage",
    "corpusmill.tokenizer.eval_stage",
    "corpusmill.curation.megatron.stage",
    "corpusmill.curation.blend.stage",
    "corpusmill.pipelines.runner",
    "corpusmill.curation.select.stage",
    "corpusmill.pipelines.train",
    "corpusmill.trainer.export",
    "corpusmill.pipelines.demo",
    "corpusmill.pipelines.jobs",
    "corpusmill.pipelines.run_report",
)
GROUP_HELP = {
    "dedup": "duplicate removal stages",
    "tokenizer": "tokenizer sampling, training and evaluation",
    "blend": "blend specifications resolved over tokenized shards",
    "classify": "language, category and code-language labels",
    "jobs": "follow pipelines submitted to a Ray cluster",
    "lm": "KenLM perplexity models (CCNet) for `corpusmill quality`",
    "train": "train the bundled model on resolved blends, and export it",
}
PROG = "corpusmill"


def commands() -> list[StageCommand]:
    """Every command, in the order the help lists them."""
    return [command for name in COMMAND_MODULES for command in importlib.import_module(name).COMMANDS]


def find_command(name: str) -> StageCommand | None:
    """The command a pipeline step names (``dedup exact``)."""
    return next((command for command in commands() if command.name == name), None)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Where units run and whether to start over: chosen by the caller, never by a stage."""
    parser.add_argument(
        "--ray-address", default=None, help="Ray cluster to use (default: $RAY_ADDRESS, else an embedded local Ray)"
    )
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs for an embedded Ray (default: all)")
    parser.add_argument(
        "--always-ray",
        action="store_true",
        help="run every unit on Ray (default: a phase of one unit runs in this process, without starting Ray)",
    )
    parser.add_argument("--overwrite", action="store_true", help="discard an existing output and start over")


def command_parser(command: StageCommand) -> argparse.ArgumentParser:
    deeper = [other for other in commands() if other.words[: len(command.words)] == command.words and other != command]
    epilog = "sub-commands: " + ", ".join(f"`{PROG} {other.name}`" for other in deeper) if deeper else None
    parser = argparse.ArgumentParser(prog=f"{PROG} {command.name}", description=command.help, epilog=epilog)
    add_arguments(parser, command.options)
    if command.uses_executor:
        add_common_arguments(parser)
    return parser


def _match(argv: list[str], available: list[StageCommand]) -> tuple[StageCommand | None, int]:
    """The command whose words are the longest prefix of ``argv``, and how many words it took."""
    best, taken = None, 0
    for command in available:
        size = len(command.words)
        if size > taken and tuple(argv[:size]) == command.words:
            best, taken = command, size
    return best, taken


def _listing(available: list[StageCommand], prefix: tuple[str, ...]) -> str:
    """``corpusmill [WORDS] --help`` for a word that is not itself a command: what follows it."""
    lines = [f"usage: {' '.join([PROG, *prefix])} COMMAND ...", "", "commands:"]
    seen: set[str] = set()
    for command in available:
        if command.words[: len(prefix)] != prefix or len(command.words) == len(prefix):
            continue
        word = command.words[len(prefix)]
        nested = len(command.words) > len(prefix) + 1
        if word in seen:
            continue
        seen.add(word)
        text = GROUP_HELP.get(word, "") if nested else command.help
        lines.append(f"  {word:<18} {text}")
    return "\n".join(lines)


def parse(argv: Sequence[str]) -> tuple[StageCommand, argparse.Namespace]:
    """Find the command named by the leading words of ``argv`` and parse the rest with its parser."""
    available = commands()
    words = list(argv)
    command, taken = _match(words, available)
    if command is None:
        group = tuple(words[:1]) if words and any(c.words[0] == words[0] for c in available) else ()
        print(_listing(available, group), file=sys.stdout if {"-h", "--help"} & set(words) else sys.stderr)
        raise SystemExit(0 if {"-h", "--help"} & set(words) else 2)
    return command, command_parser(command).parse_args(words[taken:])


def _explained_cause(error: BaseException) -> CorpusmillError | None:
    """The user-facing error inside ``error``, also when a Ray worker raised it and Ray wrapped it."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, CorpusmillError):
            return current
        seen.add(id(current))
        current = getattr(current, "cause", None) or current.__cause__
    return None


def execute_and_render(command: StageCommand, options: Any, executor: Executor, overwrite: bool = False) -> Any:
    """Run one command and show a person its result: its own tables, then the stats summary."""
    from corpusmill.curation.dataset import STATS_FILE
    from corpusmill.pipelines.report import summarize_output

    result = command.execute(options, executor, overwrite)
    text = command.render(result) if command.render is not None else None
    if text:
        print(text)
    out = getattr(options, "out", None)
    if result is not None and out is not None and (Path(out) / STATS_FILE).exists():
        print(summarize_output(out))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    from corpusmill.pipelines.console import ConsoleProgress
    from corpusmill.pipelines.execution import RayExecutor

    command, args = parse(sys.argv[1:] if argv is None else argv)
    engine = command.uses_executor
    executor = (
        RayExecutor(args.ray_address, args.num_cpus, ConsoleProgress(), inline_single_unit=not args.always_ray)
        if engine
        else SerialExecutor()
    )
    try:
        execute_and_render(command, from_cli(command.options, args), executor, engine and args.overwrite)
    except Exception as error:
        cause = _explained_cause(error)
        if cause is None and isinstance(error, OSError):  # a write outside a stage run (the run record)
            cause = explain_write_error(error)
        if cause is None:
            raise
        print(f"{PROG}: error: {cause}", file=sys.stderr)
        return 2
    finally:
        if isinstance(executor, RayExecutor):
            executor.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
