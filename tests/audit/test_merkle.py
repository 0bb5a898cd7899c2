"""RFC 6962 Merkle trees: the published test vectors, every proof for trees of 1-70 leaves, mutations."""

import pytest

from audit import merkle, notes

LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
H = {
    "a": "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "b": "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "c": "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    "d": "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "e": "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "f": "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "g": "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "k": "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "l": "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "m": "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
}
LEAF_HASHES = [merkle.leaf_hash(leaf) for leaf in LEAVES]


def hexes(hashes):
    return [h.hex() for h in hashes]


def test_empty_tree_and_roots_for_sizes_1_to_8():
    assert merkle.root([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    for size, expected in enumerate(ROOTS, start=1):
        assert merkle.root(LEAF_HASHES[:size]).hex() == expected
        assert merkle.lists(LEAF_HASHES).mth(0, size).hex() == expected
        compact, pushed = merkle.CompactRange(), merkle.CompactRange()
        for leaf in LEAF_HASHES[:size]:
            compact.append(leaf)
            pushed.push(leaf)
        assert compact.root().hex() == pushed.root().hex() == expected


@pytest.mark.parametrize(
    ("index", "size", "proof"),
    [(0, 8, "abc"), (5, 8, "def"), (2, 3, "g"), (1, 5, "mbd"), (0, 1, "")],
)
def test_inclusion_vectors(index, size, proof):
    generated = merkle.lists(LEAF_HASHES).inclusion_proof(index, size)
    assert hexes(generated) == [H[name] for name in proof]
    assert merkle.verify_inclusion(index, size, LEAF_HASHES[index], generated, bytes.fromhex(ROOTS[size - 1]))


@pytest.mark.parametrize(
    ("old", "new", "proof"),
    [(1, 8, "abc"), (6, 8, "kef"), (2, 5, "bd"), (6, 7, "klf")],
)
def test_consistency_vectors(old, new, proof):
    generated = merkle.lists(LEAF_HASHES).consistency_proof(old, new)
    assert hexes(generated) == [H[name] for name in proof]
    assert merkle.verify_consistency(
        old, new, generated, bytes.fromhex(ROOTS[old - 1]), bytes.fromhex(ROOTS[new - 1])
    )


def _mutations(proof):
    """Single-bit flips, removed, extra and reordered elements: every one must be rejected."""
    for position in range(len(proof)):
        flipped = bytearray(proof[position])
        flipped[0] ^= 1
        yield [*proof[:position], bytes(flipped), *proof[position + 1 :]]
        yield proof[:position] + proof[position + 1 :]
    yield [*proof, bytes(32)]
    yield [bytes(32), *proof]
    if len(proof) > 1:
        yield [proof[1], proof[0], *proof[2:]]


TREE = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(70)]
HASHER = merkle.lists(TREE)
ROOT_AT = {size: merkle.root(TREE[:size]) for size in range(1, 71)}


@pytest.mark.parametrize("size", range(1, 71))
def test_every_inclusion_proof_verifies_and_mutants_fail(size):
    root = ROOT_AT[size]
    for index in range(size):
        proof = HASHER.inclusion_proof(index, size)
        assert len(proof) <= max(1, (size - 1).bit_length())
        assert merkle.verify_inclusion(index, size, TREE[index], proof, root)
        for mutant in _mutations(proof):
            assert not merkle.verify_inclusion(index, size, TREE[index], mutant, root)
        assert not merkle.verify_inclusion(index, size, TREE[(index + 1) % 70], proof, root) or size == 1
        if size > 1:
            assert not merkle.verify_inclusion(index ^ 1, size, TREE[index], proof, root) or index ^ 1 >= size
        assert not merkle.verify_inclusion(index, size * 2, TREE[index], proof, root)
        assert not merkle.verify_inclusion(index, size, TREE[index], proof, bytes(32))


@pytest.mark.parametrize("new", range(1, 71))
def test_every_consistency_proof_verifies_and_mutants_fail(new):
    for old in range(1, new + 1):
        proof = HASHER.consistency_proof(old, new)
        assert merkle.verify_consistency(old, new, proof, ROOT_AT[old], ROOT_AT[new])
        if old == new:
            continue
        for mutant in _mutations(proof):
            assert not merkle.verify_consistency(old, new, mutant, ROOT_AT[old], ROOT_AT[new])
        assert not merkle.verify_consistency(old, new, proof, ROOT_AT[new], ROOT_AT[old])
        assert not merkle.verify_consistency(old, new * 2, proof, ROOT_AT[old], ROOT_AT[new])
        if old > 1:
            assert not merkle.verify_consistency(old - 1, new, proof, ROOT_AT[old], ROOT_AT[new])


def test_compact_range_reports_every_full_aligned_subtree_it_completes():
    compact, reported = merkle.CompactRange(), {}
    for end, leaf in enumerate(TREE, start=1):
        for size, value in compact.append(leaf):
            reported[(end - size, size)] = value
    expected = {
        (start, size): merkle.root(TREE[start : start + size])
        for size in (2, 4, 8, 16, 32, 64)
        for start in range(0, 70 - size + 1, size)
    }
    assert reported == expected


def test_range_hasher_uses_stored_subtrees():
    calls = []

    def fetch(start, end):
        calls.append((start, end))
        return TREE[start:end]

    stored = {(0, 64): merkle.root(TREE[:64])}
    hasher = merkle.RangeHasher(fetch, lambda start, size: stored.get((start, size)), leaf_block=4)
    assert hasher.mth(0, 70) == ROOT_AT[70]
    assert all(end - start <= 4 for start, end in calls)
    assert not any(start < 64 for start, _ in calls)  # the stored subtree replaced 64 leaf reads


def test_signed_checkpoint_round_trip_and_forgeries():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    origin = "registry.test/audit/v1"
    vkey = notes.verifier_key(origin, key.public_key())
    note = notes.sign(notes.checkpoint_text(origin, 8, bytes.fromhex(ROOTS[7])), origin, key)
    opened = notes.open_checkpoint(note, vkey, origin=origin)
    assert (opened.size, opened.root_hash.hex()) == (8, ROOTS[7])
    forgeries = [
        note.replace("\n8\n", "\n9\n"),
        notes.sign(notes.checkpoint_text(origin, 8, bytes(32)), origin, other),
        note.split("\n\n")[0] + "\n\n",
        note.replace(origin, "elsewhere/audit", 1),
    ]
    for forged in forgeries:
        with pytest.raises(notes.NoteError):
            notes.open_checkpoint(forged, vkey, origin=origin)
    # An extra signature by an unknown key is ignored; the trusted one still verifies.
    extra = note + notes.sign(notes.checkpoint_text(origin, 8, bytes(32)), "witness", other).split("\n\n")[1]
    assert notes.open_checkpoint(extra, vkey).size == 8


def test_c2sp_example_key_id_format():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    name, kid, _ = notes.parse_verifier_key(notes.verifier_key("a.example/log", key.public_key()))
    assert name == "a.example/log" and len(kid) == 4


def test_append_subtree_is_appending_its_leaves():
    leaves = [merkle.leaf_hash(str(n).encode()) for n in range(1000)]
    one_by_one, by_blocks = merkle.CompactRange(), merkle.CompactRange()
    completed = []
    for leaf in leaves[:768]:
        completed += [item for item in one_by_one.append(leaf) if item[0] > 256]
    joined = []
    for start in range(0, 768, 256):
        joined += by_blocks.append_subtree(256, merkle.root(leaves[start : start + 256]))
    assert joined == completed
    for leaf in leaves[768:]:
        one_by_one.append(leaf)
        by_blocks.append(leaf)
    assert by_blocks.root() == one_by_one.root() == merkle.root(leaves)
    with pytest.raises(ValueError):
        by_blocks.append_subtree(256, leaves[0])  # 1000 leaves: not at a multiple of 256
