"""RFC 9162 tree hashes and proofs, checked against a straightforward reference tree built here.

The reference follows the RFC's recursive definitions literally (MTH, PATH, SUBPROOF) over the list
of leaf inputs; the code under test (ledger.merkle from stored subtrees, lotline_verify.tree while
streaming) must give the same hashes, and both verifiers must accept exactly the genuine proofs.
"""

from __future__ import annotations

import functools
import hashlib
import random

import pytest

from ledger import merkle
from ledger.errors import InvalidInput
from lotline_verify import tree as offline

MAX = 64


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class Reference:
    """RFC 9162 §2.1.1-2.1.4 as written, over leaf inputs D[0:n]; range hashes memoised for big trees."""

    def __init__(self, inputs: list[bytes]) -> None:
        self.d = inputs

    @functools.cache  # noqa: B019 -- one Reference per test module, kept for its lifetime
    def mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 0:
            return sha(b"")
        if n == 1:
            return sha(b"\x00" + self.d[lo])
        k = 1
        while k * 2 < n:
            k *= 2
        return sha(b"\x01" + self.mth(lo, lo + k) + self.mth(lo + k, hi))

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = 1
        while k * 2 < n:
            k *= 2
        if m < k:
            return [*self.path(m, lo, lo + k), self.mth(lo + k, hi)]
        return [*self.path(m - k, lo + k, hi), self.mth(lo, lo + k)]

    def subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = 1
        while k * 2 < n:
            k *= 2
        if m <= k:
            return [*self.subproof(m, lo, lo + k, b), self.mth(lo + k, hi)]
        return [*self.subproof(m - k, lo + k, hi, False), self.mth(lo, lo + k)]

    def proof(self, m: int, n: int) -> list[bytes]:
        return self.subproof(m, 0, n, True) if 0 < m < n else []


def inputs(n: int) -> list[bytes]:
    return [b"event %d" % i for i in range(n)]


@pytest.fixture(scope="module")
def small() -> tuple[Reference, merkle.MemoryTree]:
    data = inputs(MAX)
    return Reference(data), merkle.MemoryTree(merkle.leaf_hash(x) for x in data)


@pytest.fixture(scope="module")
def big() -> tuple[Reference, merkle.MemoryTree]:
    data = inputs(100_000)
    return Reference(data), merkle.MemoryTree(merkle.leaf_hash(x) for x in data)


def flipped(proof: list[bytes], i: int) -> list[bytes]:
    bad = list(proof)
    bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
    return bad


# --- hashes -----------------------------------------------------------------------------------------


def test_rfc6962_test_vectors() -> None:
    # The leaf inputs and roots of the certificate-transparency reference tests.
    leaves = [bytes.fromhex(x) for x in (
        "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
    t = merkle.MemoryTree(merkle.leaf_hash(x) for x in leaves)
    assert merkle.EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert t.root(1).hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert t.root(8).hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


def test_every_root_up_to_64_matches_the_reference(small: tuple[Reference, merkle.MemoryTree]) -> None:
    ref, t = small
    stream = offline.Frontier()
    assert t.root(0) == stream.root() == ref.mth(0, 0)
    for n in range(1, MAX + 1):
        stream.push(merkle.leaf_hash(ref.d[n - 1]))
        assert t.root(n) == stream.root() == ref.mth(0, n), n
        assert merkle.Frontier(n, t.fetch(merkle.range_nodes(0, n)).values()).root() == ref.mth(0, n)


def test_a_frontier_resumed_from_its_hashes_keeps_building_the_same_tree() -> None:
    data = inputs(40)
    whole = merkle.Frontier()
    for x in data[:23]:
        whole.push(merkle.leaf_hash(x))
    resumed = offline.Frontier(23, whole.hashes())
    for x in data[23:]:
        whole.push(merkle.leaf_hash(x))
        resumed.push(merkle.leaf_hash(x))
    assert resumed.root() == whole.root() == Reference(data).mth(0, 40)


@pytest.mark.parametrize("start", [0, 1, 5, 8, 12, 37])
def test_a_frontier_extended_in_runs_builds_the_tree_leaf_by_leaf_does(start: int) -> None:
    """`extend` hashes whole aligned subtrees a level at a time; whatever the runs and wherever they
    start, the frontier is the one `add` builds, and its root the reference's at every run's end."""
    data = inputs(start + 300)
    ref, rng = Reference(data), random.Random(start)
    one_by_one, in_runs = merkle.Frontier(), merkle.Frontier()
    for x in data[:start]:
        one_by_one.add(merkle.leaf_hash(x))
        in_runs.add(merkle.leaf_hash(x))
    at = start
    while at < len(data):
        run = data[at : at + rng.choice([1, 2, 3, 16, 31, 64, 100])]
        for x in run:
            one_by_one.add(merkle.leaf_hash(x))
        in_runs.extend(b"".join(merkle.leaf_hash(x) for x in run))
        at += len(run)
        assert in_runs.size == one_by_one.size == at
        assert in_runs.hashes() == one_by_one.hashes()
        assert in_runs.root() == ref.mth(0, at), at
    in_runs.extend(b"")
    assert in_runs.size == len(data)


# --- inclusion ----------------------------------------------------------------------------------------


def test_every_inclusion_proof_up_to_64_leaves(small: tuple[Reference, merkle.MemoryTree]) -> None:
    ref, t = small
    for n in range(1, MAX + 1):
        root = ref.mth(0, n)
        for i in range(n):
            proof = merkle.inclusion_proof(i, n, t.fetch)
            assert proof == ref.path(i, 0, n), (i, n)
            leaf = merkle.leaf_hash(ref.d[i])
            assert merkle.verify_inclusion(i, n, leaf, proof, root)
            assert offline.verify_inclusion(i, n, leaf, proof, root)


def test_tampered_inclusion_proofs_fail(small: tuple[Reference, merkle.MemoryTree]) -> None:
    ref, t = small
    for n in range(1, MAX + 1):
        root = ref.mth(0, n)
        for i in range(n):
            proof = merkle.inclusion_proof(i, n, t.fetch)
            leaf = merkle.leaf_hash(ref.d[i])
            bad_cases = [(i, n, leaf, flipped(proof, j), root) for j in range(len(proof))]
            bad_cases += [
                (i, n, merkle.leaf_hash(b"forged"), proof, root),        # another event
                (i, n, leaf, [*proof, root], root),                      # a hash too many
                (i, n, leaf, proof, merkle.leaf_hash(b"other root")),    # another tree
                (n, n, leaf, proof, root),                               # index outside the tree
            ]
            if proof:
                bad_cases.append((i, n, leaf, proof[:-1], root))         # a hash missing
            if n > 1:
                bad_cases.append(((i + 1) % n, n, leaf, proof, root))    # at another index
            for case in bad_cases:
                assert not merkle.verify_inclusion(*case), (case[0], case[1])
                assert not offline.verify_inclusion(*case), (case[0], case[1])


def test_random_inclusion_proofs_up_to_100000_leaves(big: tuple[Reference, merkle.MemoryTree]) -> None:
    ref, t = big
    rnd = random.Random(9162)
    for _ in range(300):
        n = rnd.randint(1, 100_000)
        i = rnd.randrange(n)
        proof = merkle.inclusion_proof(i, n, t.fetch)
        assert proof == ref.path(i, 0, n), (i, n)
        root, leaf = ref.mth(0, n), merkle.leaf_hash(ref.d[i])
        assert merkle.verify_inclusion(i, n, leaf, proof, root)
        assert offline.verify_inclusion(i, n, leaf, proof, root)
        if proof:
            bad = flipped(proof, rnd.randrange(len(proof)))
            assert not merkle.verify_inclusion(i, n, leaf, bad, root)
            assert not offline.verify_inclusion(i, n, leaf, bad, root)


# --- consistency --------------------------------------------------------------------------------------


def test_every_consistency_proof_up_to_64_leaves(small: tuple[Reference, merkle.MemoryTree]) -> None:
    ref, t = small
    for n in range(1, MAX + 1):
        for m in range(0, n + 1):
            proof = merkle.consistency_proof(m, n, t.fetch)
            assert proof == ref.proof(m, n), (m, n)
            assert offline.consistency_ranges(m, n) == merkle.consistency_ranges(m, n)
            old, new = ref.mth(0, m), ref.mth(0, n)
            assert merkle.verify_consistency(m, n, old, new, proof), (m, n)
            assert offline.verify_consistency(m, n, old, new, proof), (m, n)


def test_tampered_consistency_proofs_fail(small: tuple[Reference, merkle.MemoryTree]) -> None:
    ref, t = small
    forged = merkle.leaf_hash(b"forged")
    for n in range(2, MAX + 1):
        for m in range(1, n):
            proof = merkle.consistency_proof(m, n, t.fetch)
            old, new = ref.mth(0, m), ref.mth(0, n)
            bad_cases = [(m, n, old, new, flipped(proof, j)) for j in range(len(proof))]
            bad_cases += [
                (m, n, forged, new, proof),          # the old tree was another one (a fork)
                (m, n, old, forged, proof),          # the new tree does not extend it
                (m, n, old, new, proof[:-1]),        # a hash missing
                (m, n, old, new, [*proof, new]),     # a hash too many
                (m, n, old, new, []),                # no proof at all
                (n, m, new, old, proof),             # sizes swapped: a shrinking log
            ]
            if m + 1 < n:
                bad_cases.append((m + 1, n, old, new, proof))    # claimed from another size
            for case in bad_cases:
                assert not merkle.verify_consistency(*case), (m, n)
                assert not offline.verify_consistency(*case), (m, n)


def test_equal_sizes_need_equal_roots_and_no_proof(small: tuple[Reference, merkle.MemoryTree]) -> None:
    ref, _ = small
    root = ref.mth(0, 10)
    assert merkle.verify_consistency(10, 10, root, root, [])
    assert not merkle.verify_consistency(10, 10, root, ref.mth(0, 9), [])
    assert not offline.verify_consistency(10, 10, root, ref.mth(0, 9), [])
    assert not merkle.verify_consistency(10, 10, root, root, [root])
    assert merkle.verify_consistency(0, 10, sha(b""), root, [])
    assert not offline.verify_consistency(0, 10, sha(b""), root, [root])


def test_random_consistency_proofs_up_to_100000_leaves(big: tuple[Reference, merkle.MemoryTree]) -> None:
    ref, t = big
    rnd = random.Random(6962)
    for _ in range(300):
        n = rnd.randint(2, 100_000)
        m = rnd.randint(1, n - 1)
        proof = merkle.consistency_proof(m, n, t.fetch)
        assert proof == ref.proof(m, n), (m, n)
        old, new = ref.mth(0, m), ref.mth(0, n)
        assert merkle.verify_consistency(m, n, old, new, proof)
        assert offline.verify_consistency(m, n, old, new, proof)
        bad = flipped(proof, rnd.randrange(len(proof)))
        assert not merkle.verify_consistency(m, n, old, new, bad)
        assert not offline.verify_consistency(m, n, old, new, bad)


def test_streamed_consistency_proofs_match_the_stored_ones() -> None:
    data = inputs(300)
    t = merkle.MemoryTree(merkle.leaf_hash(x) for x in data)
    rnd = random.Random(4)
    for _ in range(200):
        n = rnd.randint(2, 300)
        m = rnd.randint(1, n - 1)
        ranges = offline.consistency_ranges(m, n)
        hasher = offline.RangeHasher(ranges)
        for i, x in enumerate(data[:n]):
            hasher.feed(i, merkle.leaf_hash(x))
        assert hasher.proof(ranges) == merkle.consistency_proof(m, n, t.fetch), (m, n)


# --- requests the tree cannot answer --------------------------------------------------------------------


def test_proofs_outside_the_tree_are_refused(small: tuple[Reference, merkle.MemoryTree]) -> None:
    _, t = small
    with pytest.raises(InvalidInput):
        merkle.inclusion_proof(5, 5, t.fetch)
    with pytest.raises(InvalidInput):
        merkle.consistency_proof(6, 5, t.fetch)
    with pytest.raises(merkle.TreeError):
        merkle.inclusion_proof(3, MAX + 10, t.fetch)   # nodes the tree does not have yet
