"""Connected components of the verified-pair graph, on one node or distributed.

Nodes are int64 document numbers. The result is a membership: for every node
with at least one edge, the smallest node of its component (its root).

* :func:`components_single_node` uses ``scipy.sparse.csgraph`` when all edges
  fit one machine comfortably.
* :func:`large_star` and :func:`small_star` are the two steps of Kiveris et al.,
  "Connected Components in MapReduce and Beyond" (SoCC 2014), written as pure
  functions of the edges one hash partition holds. Alternating them until
  neither changes anything turns every component into a star around its
  smallest node in O(log^2 n) rounds, and no step needs more than its
  partition's edges.

Edge formats between the steps (every array int64):
  directed edges (src, dst), both directions of each edge, routed by src -> large_star
  oriented edges (larger, smaller), routed by larger                        -> small_star
"""

from __future__ import annotations

import numpy as np


def components_single_node(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(member, root) for every node of the undirected graph with edges (left[i], right[i])."""
    import scipy.sparse  # here: only fuzzy dedup's components phase needs it, not every command's import
    from scipy.sparse.csgraph import connected_components

    nodes, endpoints = np.unique(np.concatenate([left, right]), return_inverse=True)
    if nodes.size == 0:
        return nodes, nodes.copy()
    count = left.size
    graph = scipy.sparse.coo_matrix(
        (np.ones(count, dtype=np.int8), (endpoints[:count], endpoints[count:])), shape=(nodes.size, nodes.size)
    )
    _, labels = connected_components(graph, directed=False)
    # nodes are sorted, so a label's first node is its component's smallest.
    first_node_of_label = np.full(labels.max() + 1, nodes.size, dtype=np.int64)
    np.minimum.at(first_node_of_label, labels, np.arange(nodes.size))
    return nodes, nodes[first_node_of_label[labels]]


def _grouped(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (key, value) rows sorted by key then value, and each row's group start."""
    order = np.lexsort((values, keys))
    keys, values = keys[order], values[order]
    distinct = np.ones(keys.size, dtype=bool)
    distinct[1:] = (keys[1:] != keys[:-1]) | (values[1:] != values[:-1])
    keys, values = keys[distinct], values[distinct]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if keys.size else np.zeros(0, dtype=np.int64)
    return keys, values, starts


def large_star(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Link every larger neighbour of a node to the smallest of its closed neighbourhood.

    Input: directed edges holding every edge of each ``src`` node. Output:
    oriented edges (larger, smaller) and how many nodes changed their edges.
    """
    src, dst, starts = _grouped(src, dst)
    if src.size == 0:
        return src, dst, 0
    # values are sorted within a group, so the group's first value is its smallest neighbour.
    group_min = np.minimum(src[starts], dst[starts])
    group_of_row = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, src.size]))
    smallest = group_min[group_of_row]
    larger = dst > src
    changed_groups = np.unique(group_of_row[larger & (smallest < src)])
    return dst[larger], smallest[larger], int(changed_groups.size)


def small_star(larger: np.ndarray, smaller: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Link a node and its smaller neighbours to the smallest of them.

    Input: oriented edges holding every (node, smaller neighbour) of each
    ``larger`` node. Output: directed edges, both directions, and how many
    nodes changed their edges (those with more than one smaller neighbour).
    """
    larger, smaller, starts = _grouped(larger, smaller)
    if larger.size == 0:
        return larger, smaller, 0
    sizes = np.diff(np.r_[starts, larger.size])
    smallest = np.repeat(smaller[starts], sizes)
    linked = smaller != smallest
    # (node, smallest) once per group, and (other smaller neighbour, smallest).
    first = np.concatenate([larger[starts], smaller[linked]])
    second = np.concatenate([smaller[starts], smallest[linked]])
    return np.concatenate([first, second]), np.concatenate([second, first]), int(np.count_nonzero(sizes > 1))


def star_membership(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(member, root) from converged directed star edges routed by src.

    In a star every edge joins the root (its smallest node) to a leaf, so the
    rows with src < dst hold each root's whole component.
    """
    from_root = src < dst
    roots, leaves = src[from_root], dst[from_root]
    root_nodes = np.unique(roots)
    members = np.concatenate([root_nodes, leaves])
    member_roots = np.concatenate([root_nodes, roots])
    order = np.lexsort((members, member_roots))
    members, member_roots = members[order], member_roots[order]
    distinct = np.ones(members.size, dtype=bool)
    distinct[1:] = (members[1:] != members[:-1]) | (member_roots[1:] != member_roots[:-1])
    return members[distinct], member_roots[distinct]


def both_directions(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undirected edges as the directed (src, dst) rows that :func:`large_star` reads."""
    return np.concatenate([left, right]), np.concatenate([right, left])
