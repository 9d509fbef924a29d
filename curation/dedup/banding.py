"""LSH band/row choice: how many bands of how many signature rows, and their checks.

Kept apart from the LSH kernels (``lsh``), which need numba: the fuzzy stage's options
use these, and the CLI builds every command's options for its parser, so importing
them must not load numba into every command's process.
"""

from __future__ import annotations

from corpusmill.curation.errors import ConfigError

DATASKETCH_WEIGHTS = (0.5, 0.5)
# Every candidate is verified, so a false positive costs one set intersection
# while a false negative is a duplicate kept: weigh misses 49 times more. On the
# real evaluation set this takes pair recall at t=0.8 from 0.94 (datasketch's
# balanced weights) to 0.9996 at the same precision (docs/bench_fuzzy.md).
RECALL_WEIGHTS = (0.02, 0.98)
DEFAULT_BUCKET_WINDOW = 64


def optimal_bands(
    threshold: float, num_perm: int, weights: tuple[float, float] = DATASKETCH_WEIGHTS
) -> tuple[int, int]:
    """(bands, rows) minimising weighted false positive and negative probability mass.

    This is datasketch's ``MinHashLSH`` optimisation, called rather than copied so
    that our default banding is exactly the reference's.
    """
    from datasketch.lsh import _optimal_param

    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    bands, rows = _optimal_param(threshold, num_perm, *weights)
    return int(bands), int(rows)


def check_bands(bands: int, rows: int, num_perm: int) -> None:
    """Each band reads ``rows`` signature values: bands x rows of them must exist (a setting error otherwise)."""
    if bands < 1 or rows < 1 or bands * rows > num_perm:
        raise ConfigError(f"need bands >= 1, rows >= 1 and bands * rows <= num_perm ({num_perm}); got {bands} x {rows}")
