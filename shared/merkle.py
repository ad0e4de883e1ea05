"""A hash tree over a batch of records, so that one signature of its root vouches for each record of the batch.

Each record carries the path from its leaf to the root (its index, the batch's size and the sibling hashes on the
way up); a reader hashes its record, walks the path and gets the root the signature covers. SHA-256 with the leaf
and node prefixes of RFC 6962 (0x00, 0x01), so an inner node can never pass for a record. At each level an odd last
node has no sibling and moves up as it is; the size fixes the tree's shape, so a path can only be read one way.
"""
from __future__ import annotations

import hashlib

HASH_SIZE = 32
_LEAF, _NODE = b"\x00", b"\x01"


class ProofError(ValueError):
    """A path that cannot be read (wrong length, index outside the batch): the record is refused, saying so."""


def leaf_hash(*parts: bytes) -> bytes:
    """The leaf of a record whose signed bytes are the concatenation of `parts` (hashed without joining them)."""
    h = hashlib.sha256(_LEAF)
    for part in parts:
        h.update(part)
    return h.digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def root_and_paths(leaves: list[bytes]) -> tuple[bytes, list[bytes]]:
    """The root over `leaves` (at least one) and each leaf's path: the sibling hashes from the leaf up, joined."""
    if not leaves:
        raise ValueError("a tree needs at least one leaf")
    paths: list[list[bytes]] = [[] for _ in leaves]
    # members[j]: the leaves under the j-th node of the current level, whose paths take that node's sibling.
    level, members = list(leaves), [[i] for i in range(len(leaves))]
    while len(level) > 1:
        up, up_members = [], []
        for j in range(0, len(level) - 1, 2):
            left, right = level[j], level[j + 1]
            for i in members[j]:
                paths[i].append(right)
            for i in members[j + 1]:
                paths[i].append(left)
            up.append(_node(left, right))
            up_members.append(members[j] + members[j + 1])
        if len(level) % 2:
            up.append(level[-1])
            up_members.append(members[-1])
        level, members = up, up_members
    return level[0], [b"".join(p) for p in paths]


def root_of(leaf: bytes, index: int, size: int, path: bytes) -> bytes:
    """The root that `path` leads `leaf`, the `index`-th of `size` leaves, to; ProofError if the path cannot be one."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} of a batch of {size}")
    if len(path) % HASH_SIZE:
        raise ProofError(f"a path of {len(path)} bytes is not whole hashes")
    node, used, width = leaf, 0, size
    while width > 1:
        if index % 2 or index + 1 < width:
            sibling = path[used:used + HASH_SIZE]
            if len(sibling) < HASH_SIZE:
                raise ProofError("the path is shorter than the batch's tree")
            used += HASH_SIZE
            node = _node(sibling, node) if index % 2 else _node(node, sibling)
        index, width = index // 2, (width + 1) // 2
    if used != len(path):
        raise ProofError("the path is longer than the batch's tree")
    return node
