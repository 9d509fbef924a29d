"""The blend's sample-to-prefix choice, compiled with numba.

Its own module so that importing ``trainer.data`` (which every CLI command does, for
the train options) does not load numba: only building a blend index needs it.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def megatron_choices(weights: np.ndarray, choices: np.ndarray, counts_at_chunk: np.ndarray, chunk: int) -> None:
    """``build_blending_indices`` of Megatron-LM's helpers.cpp, the same float64 arithmetic in the same order."""
    drawn = np.zeros(weights.shape[0], dtype=np.int64)
    for i in range(choices.shape[0]):
        if i % chunk == 0:
            counts_at_chunk[i // chunk, :] = drawn
        scale = float(max(i, 1))
        best = 0
        best_error = weights[0] * scale - drawn[0]
        for d in range(1, weights.shape[0]):
            error = weights[d] * scale - drawn[d]
            if error > best_error:
                best = d
                best_error = error
        choices[i] = best
        drawn[best] += 1
