"""RFC 6962 Merkle trees over leaf hashes: roots, inclusion and consistency proofs, and their checks.

Pure functions over lists of 32-byte leaf hashes, plus `RangeHasher`, which answers subtree hashes from
a callback so that large trees are never loaded whole. Verification follows RFC 9162 §2.1.3.2 and
§2.1.4.2, including the checks that the whole tree size is consumed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: list[bytes]) -> bytes:
    """MTH of a list of leaf hashes, folded with a stack of perfect subtrees (O(log n) memory)."""
    if not leaves:
        return EMPTY_ROOT
    stack: list[tuple[int, bytes]] = []  # (size, hash) of perfect subtrees, left to right
    for leaf in leaves:
        size, value = 1, leaf
        while stack and stack[-1][0] == size:
            left_size, left = stack.pop()
            size, value = left_size + size, node_hash(left, value)
        stack.append((size, value))
    value = stack.pop()[1]
    while stack:
        value = node_hash(stack.pop()[1], value)
    return value


class CompactRange:
    """An incremental Merkle root: append leaf hashes one by one, ask for the root at any point.

    The stack holds the hashes of the perfect subtrees left to right, one per bit set in `size` (largest
    first), so appending merges as many subtrees as `size` has trailing one bits.
    """

    def __init__(self) -> None:
        self.size = 0
        self._hashes: list[bytes] = []

    def append(self, leaf: bytes) -> list[tuple[int, bytes]]:
        """Add a leaf; return the (size, hash) of each perfect subtree it completes, smallest first.

        Each such subtree ends at this leaf, so it is the aligned subtree of `size` leaves at index
        self.size // size - 1 of its level (what audit_verify compares with the stored Merkle nodes).
        """
        below, hashes = self.size, self._hashes
        self.size = below + 1
        if not below & 1:  # half of the appends complete nothing
            hashes.append(leaf)
            return []
        sha256, completed, size, value = hashlib.sha256, [], 1, leaf
        while below & 1:
            value = sha256(b"\x01" + hashes.pop() + value).digest()
            size <<= 1
            completed.append((size, value))
            below >>= 1
        hashes.append(value)
        return completed

    def push(self, leaf: bytes) -> None:
        """append, for a caller that needs only roots."""
        below, hashes = self.size, self._hashes
        self.size = below + 1
        if below & 1:
            sha256 = hashlib.sha256
            while below & 1:
                leaf = sha256(b"\x01" + hashes.pop() + leaf).digest()
                below >>= 1
        hashes.append(leaf)

    def append_subtree(self, size: int, value: bytes) -> list[tuple[int, bytes]]:
        """Add the hash of a perfect subtree of `size` leaves (a power of two) where the tree's size is a
        multiple of `size`: what appending its leaves one by one would give. Returns the (size, hash) of each
        larger subtree it completes, smallest first."""
        if size & (size - 1) or self.size % size:
            raise ValueError(f"a subtree of {size} leaves does not start at leaf {self.size}")
        below, hashes, sha256, completed = self.size // size, self._hashes, hashlib.sha256, []
        self.size += size
        while below & 1:
            value = sha256(b"\x01" + hashes.pop() + value).digest()
            size <<= 1
            completed.append((size, value))
            below >>= 1
        hashes.append(value)
        return completed

    def root(self) -> bytes:
        if not self._hashes:
            return EMPTY_ROOT
        value = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            value = node_hash(left, value)
        return value


class RangeHasher:
    """MTH of any range [start, end) of a log, from a function that returns the leaf hashes of a range.

    `fetch(start, end)` returns leaf hashes; `cached(start, size)` may return a stored hash of a perfect,
    aligned subtree (or None). Proofs need O(log n) subtree hashes, so they cost O(log n) small reads.
    """

    def __init__(
        self,
        fetch: Callable[[int, int], list[bytes]],
        cached: Callable[[int, int], bytes | None] = lambda start, size: None,
        leaf_block: int = 256,
    ) -> None:
        self.fetch, self.cached, self.leaf_block = fetch, cached, leaf_block

    def mth(self, start: int, end: int) -> bytes:
        size = end - start
        if size <= 0:
            return EMPTY_ROOT
        if size & (size - 1) == 0 and start % size == 0:
            stored = self.cached(start, size)
            if stored is not None:
                return stored
        if size <= self.leaf_block:
            return root(self.fetch(start, end))
        k = split_point(size)
        return node_hash(self.mth(start, start + k), self.mth(start + k, end))

    def inclusion_proof(self, index: int, size: int, start: int = 0) -> list[bytes]:
        """PATH(index, D[start:start+size]) of RFC 6962 §2.1.1."""
        if size <= 1:
            return []
        k = split_point(size)
        if index < k:
            return [*self.inclusion_proof(index, k, start), self.mth(start + k, start + size)]
        return [*self.inclusion_proof(index - k, size - k, start + k), self.mth(start, start + k)]

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        """PROOF(old, D[new]) of RFC 6962 §2.1.2 (empty when old is 0 or equals new)."""
        if old <= 0 or old >= new:
            return []
        return self._subproof(old, 0, new, True)

    def _subproof(self, m: int, start: int, size: int, complete: bool) -> list[bytes]:
        if m == size:
            return [] if complete else [self.mth(start, start + size)]
        k = split_point(size)
        if m <= k:
            return [*self._subproof(m, start, k, complete), self.mth(start + k, start + size)]
        return [*self._subproof(m - k, start + k, size - k, False), self.mth(start, start + k)]


def lists(leaves: list[bytes]) -> RangeHasher:
    """A RangeHasher over an in-memory list (tests and small trees)."""
    return RangeHasher(lambda start, end: leaves[start:end])


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], expected_root: bytes) -> bool:
    if index >= size or index < 0:
        return False
    fn, sn, value = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            value = node_hash(sibling, value)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            value = node_hash(value, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and value == expected_root


def verify_consistency(old: int, new: int, proof: list[bytes], old_root: bytes, new_root: bytes) -> bool:
    if old < 0 or old > new:
        return False
    if old == new:
        return not proof and old_root == new_root
    if old == 0:
        return not proof  # pinned: nothing to prove from an empty tree
    if not proof:
        return False
    if old & (old - 1) == 0:
        proof = [old_root, *proof]
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first = second = proof[0]
    for sibling in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            first, second = node_hash(sibling, first), node_hash(sibling, second)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            second = node_hash(second, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and first == old_root and second == new_root
