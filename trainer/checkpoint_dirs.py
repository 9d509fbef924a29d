"""A run's checkpoint directories: their names and which of them are complete.

Torch-free, so that commands which only look for a checkpoint (export's argument checks, the
trainer's resume decision, the report) need not import torch.
"""

from __future__ import annotations

import re
from pathlib import Path

CHECKPOINT_DIR = "checkpoints"
_STEP_DIR = re.compile(r"^step_(\d{8})$")
METADATA_FILE = ".metadata"


def step_dir_name(step: int) -> str:
    return f"step_{step:08d}"


def complete_checkpoints(root: Path) -> list[Path]:
    """Published checkpoints, oldest first."""
    if not root.is_dir():
        return []
    found = [path for path in root.iterdir() if _STEP_DIR.match(path.name) and (path / METADATA_FILE).is_file()]
    return sorted(found, key=lambda path: path.name)


def latest_checkpoint(root: Path) -> Path | None:
    found = complete_checkpoints(root)
    return found[-1] if found else None
