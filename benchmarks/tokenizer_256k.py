"""The 256k tokenizer benchmark: sample, train 256k and a 32k baseline on the same sample, evaluate both.

Runs the same functions as `corpusmill tokenizer sample|train|eval`, one after the other,
on a corpus made by benchmarks/tokenizer_corpus.py (its `pool` to sample from, its
`heldout` to evaluate on), and writes OUT/results.json plus the markdown tables for
docs/BENCHMARKS.md to stdout.

    .venv/bin/python benchmarks/tokenizer_256k.py --corpus /tmp/tok_bench/corpus --out /tmp/tok_bench/run \
        --upsample multilingual=3 --upsample code=0.5 --max-bytes 1e9
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import psutil

from corpusmill.curation.atomic import write_json_atomic
from corpusmill.pipelines.console import ConsoleProgress
from corpusmill.pipelines.execution import RayExecutor
from corpusmill.tokenizer.eval_stage import EvalOptions, evaluate
from corpusmill.tokenizer.sample_stage import SampleOptions, render_sample, sample
from corpusmill.tokenizer.train_stage import TrainOptions, train_tokenizer


def training_row(label: str, card: dict[str, Any]) -> str:
    return (
        f"| {label} | {card['settings']['vocab_size']:,} | {card['sample']['bytes'] / 1e6:,.1f} MB | "
        f"{card['sentences_loaded']:,} | {card['wall_seconds'] / 60:,.1f} min | "
        f"{card['peak_rss_bytes'] / 2**30:,.2f} GiB | {card['estimated_peak_bytes'] / 2**30:,.2f} GiB |"
    )


def eval_rows(report: dict[str, Any], labels: list[str], limit: int) -> list[str]:
    models = [report["models"][label] for label in labels]
    header = "| group | docs | MB | " + " | ".join(f"B/tok {n} | tok/word {n}" for n in labels) + " |"
    lines = [header, "|" + "---|" * (3 + 2 * len(labels))]

    def row(name: str, entries: list[dict[str, Any]]) -> str:
        cells = " | ".join(f"{e['bytes_per_token']:.2f} | {e['tokens_per_word']:.2f}" for e in entries)
        return f"| {name} | {entries[0]['docs']:,} | {entries[0]['bytes'] / 1e6:,.1f} | {cells} |"

    for key, title in (("languages", "lang"), ("code_languages", "code")):
        ranked = sorted(models[0][key], key=lambda g: -models[0][key][g]["bytes"])
        lines += [row(f"{title} {g}", [m[key][g] for m in models]) for g in ranked[:limit]]
    lines.append(row("**all**", [m["total"] for m in models]))
    summary = ["", "| model | vocab used | byte-fallback tokens | round-trip failures |", "|---|---|---|---|"]
    for label, model in zip(labels, models):
        total = model["total"]
        summary.append(
            f"| {label} | {model['vocab_used']:,} ({model['vocab_used_share']:.1%}) | "
            f"{total['byte_fallback_rate']:.4%} | {total['roundtrip_failures']} of {total['docs']:,} docs |"
        )
    return lines + summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="output of benchmarks/tokenizer_corpus.py")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--upsample", action="append", default=[])
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--max-bytes", type=float, default=None)
    parser.add_argument("--vocab-size", type=int, default=256_000)
    parser.add_argument("--baseline-vocab-size", type=int, default=32_000)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--table-rows", type=int, default=12, help="languages and code languages shown per table")
    args = parser.parse_args()

    executor = RayExecutor(num_cpus=args.threads, progress=ConsoleProgress())
    sample_options = SampleOptions(
        inputs=(str(args.corpus / "pool"),),
        out=str(args.out / "sample"),
        upsample=tuple(args.upsample),
        temperature=args.temperature,
        max_bytes=None if args.max_bytes is None else int(args.max_bytes),
    )
    drawn = sample(sample_options, executor=executor)
    print(render_sample(drawn), file=sys.stderr)
    composition = drawn.composition
    cards = {}
    for vocab_size in (args.vocab_size, args.baseline_vocab_size):
        label = f"{vocab_size // 1000}k"
        options = TrainOptions(
            input=sample_options.out, out=str(args.out / label), vocab_size=vocab_size, num_threads=args.threads
        )
        cards[label] = train_tokenizer(options, executor=executor).to_dict()
    labels = list(cards)
    eval_inputs = (*(str(args.out / label) for label in labels), str(args.corpus / "heldout"))
    report = evaluate(EvalOptions(inputs=eval_inputs, out=str(args.out / "eval")), executor=executor)
    write_json_atomic(args.out / "results.json", {"cards": cards, "eval": report, "composition": composition})
    machine = f"{os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    print(f"Machine: {machine}\n")
    print("| model | vocab | sample | sentences | wall | peak RSS | estimated peak |\n|---|---|---|---|---|---|---|")
    print("\n".join(training_row(label, card) for label, card in cards.items()))
    print()
    print("\n".join(eval_rows(report, labels, args.table_rows)))


if __name__ == "__main__":
    main()
