"""The stored Merkle tree on SQLite and PostgreSQL: proofs from stored subtrees, growth from the chain."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.chain import encode_event
from ledger.errors import InvalidInput
from ledger.merkle import (
    MemoryTree,
    MerkleStore,
    TreeError,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from tests.merkle_builders import Attacker, supply_log


@pytest.fixture
def store(database_url: str) -> Iterator[MerkleStore]:
    s = MerkleStore.open(database_url)
    yield s
    s.close()


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(b"leaf %d" % i) for i in range(n)]


def test_stored_proofs_equal_the_in_memory_tree_for_every_pair_up_to_64(store: MerkleStore) -> None:
    data = leaves(64)
    start = 0
    for batch in (1, 2, 5, 8, 13, 35):   # uneven batches: subtrees complete across appends
        store.append(start, data[start : start + batch])
        start += batch
    reference = MemoryTree(data)
    assert store.size() == 64
    for n in range(1, 65):
        assert store.root(n) == reference.root(n)
        for i in range(n):
            assert store.inclusion_proof(i, n) == reference_inclusion(reference, i, n)
        for m in range(0, n + 1):
            proof = store.consistency_proof(m, n)
            assert verify_consistency(m, n, reference.root(m), reference.root(n), proof), (m, n)


def reference_inclusion(tree: MemoryTree, i: int, n: int) -> list[bytes]:
    return inclusion_proof(i, n, tree.fetch)


def test_random_stored_proofs_up_to_20000_leaves_verify(store: MerkleStore) -> None:
    data = leaves(20_000)
    for start in range(0, 20_000, 4_999):
        store.append(start, data[start : start + 4_999])
    rnd = random.Random(7)
    for _ in range(200):
        n = rnd.randint(1, 20_000)
        i, m = rnd.randrange(n), rnd.randint(1, n)
        root = store.root(n)
        assert verify_inclusion(i, n, data[i], store.inclusion_proof(i, n), root)
        assert verify_consistency(m, n, store.root(m), root, store.consistency_proof(m, n))


def test_the_tree_only_grows_at_its_end(store: MerkleStore) -> None:
    store.append(0, leaves(3))
    with pytest.raises(TreeError, match="cannot append at 5"):
        store.append(5, leaves(1))
    with pytest.raises(TreeError, match="cannot append at 1"):
        store.append(1, leaves(1))
    with pytest.raises(InvalidInput):
        store.inclusion_proof(0, 4)   # a size the tree has not reached


def test_sync_makes_one_leaf_per_chained_event_in_chain_order(database_url: str, tmp_path: Path) -> None:
    with supply_log(database_url, tmp_path / "keys", events=25) as (supply, log):
        assert log.sync() == 25
        supply.grow(12)
        assert log.sync() == 37
        expected = [leaf_hash(encode_event(r.seq, r.originator_id, r.originator_version, r.topic, r.state))
                    for r in supply.ledger.chain.iter_chain()]
        assert [h for _, h in log.tree.leaves()] == expected
        assert log.tree.root() == MemoryTree(expected).root()


def test_concurrent_syncs_build_one_correct_tree(database_url: str, tmp_path: Path) -> None:
    with supply_log(database_url, tmp_path / "keys", events=60) as (supply, log):
        other = MerkleStore.open(database_url)
        errors: list[BaseException] = []

        def sync(s: MerkleStore) -> None:
            try:
                s.sync(supply.ledger.chain, batch=7)
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=sync, args=(s,)) for s in (log.tree, other, log.tree)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        other.close()
        assert not errors
        expected = [leaf_hash(encode_event(r.seq, r.originator_id, r.originator_version, r.topic, r.state))
                    for r in supply.ledger.chain.iter_chain()]
        assert [h for _, h in log.tree.leaves()] == expected


def test_sync_refuses_to_extend_the_tree_over_an_altered_event(database_url: str, tmp_path: Path) -> None:
    with supply_log(database_url, tmp_path / "keys", events=10) as (supply, log):
        assert log.sync() == 10
        supply.grow(5)
        attacker = Attacker(database_url, supply.ledger.chain.events_table_name)
        attacker.alter_event(12)
        attacker.close()
        with pytest.raises(TreeError, match="event 12 does not match its chain hash"):
            log.sync()
        assert log.tree.size() == 10   # nothing after the last good batch was added
