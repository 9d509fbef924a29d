"""What ``torchrun`` runs in every process of `corpusmill train`: the training loop, with a console on rank 0.

``python -m torch.distributed.run ... -m corpusmill.pipelines.train_worker RUN_DIR [--steps N]``.
A user error (a checkpoint from another layout, say) is printed as one line and exits 2, as the CLI does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from corpusmill.curation.errors import CorpusmillError
from corpusmill.pipelines.console import TrainConsole
from corpusmill.trainer.train import train


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="corpusmill.pipelines.train_worker", description=__doc__)
    parser.add_argument("run_dir", type=Path, help="a run directory `corpusmill train` prepared (run.json)")
    parser.add_argument("--steps", type=int, default=None, help="stop after this many steps in all")
    args = parser.parse_args(argv)
    try:
        train(args.run_dir, args.steps, TrainConsole())
    except CorpusmillError as error:
        print(f"corpusmill train: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
