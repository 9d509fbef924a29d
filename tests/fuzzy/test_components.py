"""Connected components: the distributed large/small-star steps agree with scipy."""

from __future__ import annotations

import numpy as np
import pytest

from corpusmill.curation.dedup.components import (
    both_directions,
    components_single_node,
    large_star,
    small_star,
    star_membership,
)
from corpusmill.curation.dedup.fuzzy_stage import route


def distributed_components(left: np.ndarray, right: np.ndarray, partitions: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The stage's round loop in memory: every step sees only its own partition's edges."""

    def step(function, keys_of, first, second):  # type: ignore[no-untyped-def]
        outputs, changes = [], 0
        partition = route(keys_of(first, second), partitions)
        for p in range(partitions):
            *edges, changed = function(first[partition == p], second[partition == p])
            outputs.append(edges)
            changes += changed
        return np.concatenate([o[0] for o in outputs]), np.concatenate([o[1] for o in outputs]), changes

    src, dst = both_directions(left, right)
    for rounds in range(1, 100):
        larger, smaller, large_changes = step(large_star, lambda a, b: a, src, dst)
        src, dst, small_changes = step(small_star, lambda a, b: a, larger, smaller)
        if large_changes == 0 and small_changes == 0:
            break
    partition = route(src, partitions)
    pieces = [star_membership(src[partition == p], dst[partition == p]) for p in range(partitions)]
    members = np.concatenate([p[0] for p in pieces])
    roots = np.concatenate([p[1] for p in pieces])
    order = np.argsort(members)
    return members[order], roots[order], rounds


@pytest.mark.parametrize("partitions", [1, 4])
def test_star_rounds_equal_scipy_on_random_graphs(partitions: int) -> None:
    rng = np.random.default_rng(partitions)
    for _ in range(60):
        nodes = int(rng.integers(2, 400))
        edges = int(rng.integers(1, 500))
        left, right = rng.integers(0, nodes, edges) << 20, rng.integers(0, nodes, edges) << 20
        keep = left != right
        expected = components_single_node(left[keep], right[keep])
        members, roots, _ = distributed_components(left[keep], right[keep], partitions)
        np.testing.assert_array_equal(members, expected[0])
        np.testing.assert_array_equal(roots, expected[1])


def test_long_path_converges_to_its_smallest_node() -> None:
    rng = np.random.default_rng(0)
    labels = rng.permutation(3000) + 10
    members, roots, rounds = distributed_components(labels[:-1], labels[1:], 3)
    assert set(members.tolist()) == set(labels.tolist())
    assert (roots == 10).all() and rounds < 30


def test_single_node_roots_are_component_minima() -> None:
    members, roots = components_single_node(np.array([5, 9, 2, 7]), np.array([9, 3, 8, 2]))
    assert dict(zip(members.tolist(), roots.tolist())) == {2: 2, 3: 3, 5: 3, 7: 2, 8: 2, 9: 3}
    empty = components_single_node(np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert empty[0].size == empty[1].size == 0
