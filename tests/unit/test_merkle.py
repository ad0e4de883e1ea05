"""The hash tree that lets one signature vouch for a batch of records (shared/merkle.py)."""
from __future__ import annotations

import pytest

from shared.merkle import HASH_SIZE, ProofError, leaf_hash, root_and_paths, root_of

pytestmark = pytest.mark.unit


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(f"record {i}".encode()) for i in range(n)]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 64, 100])
def test_every_leafs_path_leads_to_the_root_and_is_as_long_as_the_tree_is_deep(size):
    root, paths = root_and_paths(leaves(size))
    for i, (leaf, path) in enumerate(zip(leaves(size), paths)):
        assert root_of(leaf, i, size, path) == root
        # A path holds at most one hash per level: ceil(log2(size)).
        assert len(path) % HASH_SIZE == 0 and len(path) // HASH_SIZE <= (size - 1).bit_length()


def test_a_path_vouches_for_its_own_leaf_at_its_own_place_only():
    batch = leaves(7)
    root, paths = root_and_paths(batch)
    # Another leaf, or the same path read at another index or in a batch of another size, gives another root.
    assert root_of(leaf_hash(b"forged"), 3, 7, paths[3]) != root
    assert root_of(batch[3], 2, 7, paths[3]) != root
    assert root_of(batch[2], 3, 7, paths[3]) != root
    with pytest.raises(ProofError):
        root_of(batch[3], 3, 9, paths[3])  # a batch of 9 is deeper: the path is short


def test_an_inner_node_cannot_pass_for_a_leaf():
    # RFC 6962's prefixes: the hash of two leaves, offered as a leaf of a batch of one, is not the root of the two.
    a, b = leaves(2)
    root, _ = root_and_paths([a, b])
    assert root_of(leaf_hash(a + b), 0, 1, b"") != root


@pytest.mark.parametrize("index, size, path, why", [
    (0, 0, b"", "of a batch of 0"),
    (5, 5, b"", "leaf 5 of a batch of 5"),
    (0, 4, bytes(31), "not whole hashes"),
    (0, 4, bytes(32), "shorter"),
    (0, 4, bytes(96), "longer"),
    (0, 1, bytes(32), "longer"),
])
def test_a_path_that_cannot_be_one_is_refused_saying_why(index, size, path, why):
    with pytest.raises(ProofError, match=why):
        root_of(leaf_hash(b"x"), index, size, path)


def test_no_tree_without_a_leaf():
    with pytest.raises(ValueError):
        root_and_paths([])
