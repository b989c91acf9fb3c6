"""Fleet mode in the store, on SQLite and PostgreSQL: claims carry their node, a restart puts
back only its own claims, silent nodes' claims are taken over, older stores are re-keyed, and
two scanners of one shared folder never undo each other's work."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from syncd.domain import FileStat, LocalState
from syncd.store import Store, repo

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SHARED = "shared:train-nfs"
STAT = FileStat(size=10, mtime_ns=1, inode=1)


@pytest.fixture
def store(engine_store: Store) -> Store:
    return engine_store


def put(
    store: Store,
    rel_path: str,
    *,
    folder: str = SHARED,
    sha: str = "a" * 64,
    keep_settled: bool = True,
    reset_attempts: bool = False,
) -> int:
    """Record a scan's verdict "pending" for ``rel_path``, as the pipeline does."""
    with store.session() as s:
        return repo.upsert_local(
            s,
            folder,
            rel_path,
            purpose="fine-tune",
            stat=STAT,
            sha256=sha,
            state=LocalState.PENDING,
            reset_attempts=reset_attempts,
            keep_settled=keep_settled,
            now=T0,
        ).id


def claim(store: Store, node: str, *, now: datetime = T0) -> list[str]:
    with store.session() as s:
        claimed = repo.claim_due_uploads(s, now=now, limit=10, folders=[SHARED], node=node)
    assert all(record.claimed_by == node for record in claimed)
    return sorted(record.rel_path for record in claimed)


def state_of(store: Store, rel_path: str, folder: str = SHARED) -> LocalState:
    with store.session() as s:
        record = repo.get_local(s, folder, rel_path)
    assert record is not None
    return record.state


def test_claims_carry_their_node_and_a_restart_resets_only_its_own(store: Store) -> None:
    put(store, "a.jsonl")
    assert claim(store, "n1") == ["a.jsonl"]
    put(store, "b.jsonl")
    assert claim(store, "n2") == ["b.jsonl"]

    with store.session() as s:
        assert repo.reset_inflight(s, now=T0, node="n1") == 1

    assert state_of(store, "a.jsonl") is LocalState.PENDING
    assert state_of(store, "b.jsonl") is LocalState.UPLOADING  # n2's upload is n2's


def test_a_silent_nodes_claims_are_taken_over_with_their_intent(store: Store) -> None:
    put(store, "a.jsonl")
    put(store, "own.jsonl", folder="n3:/elsewhere")
    claim(store, "dead")
    with store.session() as s:
        repo.claim_due_uploads(s, now=T0, limit=1, folders=["n3:/elsewhere"], node="dead")
        repo.heartbeat(
            s, "dead", version="0", pid=1, started_at=T0, now=T0, queue_depth=0, folders=[SHARED]
        )
        repo.heartbeat(
            s, "n1", version="0", pid=2, started_at=T0, now=T0, queue_depth=0, folders=[SHARED]
        )
    later = T0 + timedelta(seconds=61)

    with store.session() as s:
        early = repo.take_over_silent_claims(
            s, node="n1", folders=[SHARED], now=T0 + timedelta(seconds=30), lease=timedelta(60)
        )
        taken = repo.take_over_silent_claims(
            s, node="n1", folders=[SHARED], now=later, lease=timedelta(seconds=60)
        )

    assert (early, taken) == (0, 1)  # within the lease, the node is alive
    with store.session() as s:
        record = repo.get_local(s, SHARED, "a.jsonl")
    assert record is not None
    assert (record.state, record.claimed_by) == (LocalState.PENDING, None)
    assert record.intent_started_at is not None  # the adoption lookup applies
    # Only the folders the taking node syncs: another folder's claim stays.
    assert state_of(store, "own.jsonl", "n3:/elsewhere") is LocalState.UPLOADING


def test_heartbeats_are_listed_with_their_latest_values(store: Store) -> None:
    with store.session() as s:
        repo.heartbeat(
            s, "n1", version="1", pid=7, started_at=T0, now=T0, queue_depth=3, folders=["k"]
        )
    with store.session() as s:
        repo.heartbeat(
            s,
            "n1",
            version="1",
            pid=7,
            started_at=T0,
            now=T0 + timedelta(seconds=10),
            queue_depth=0,
            folders=["k", "j"],
            problems=["API unreachable"],
        )
    with store.session() as s:
        (node,) = repo.list_nodes(s)
    assert (node.name, node.queue_depth, node.folders, node.problems) == (
        "n1",
        0,
        ("k", "j"),
        ("API unreachable",),
    )
    assert node.last_seen_at == T0 + timedelta(seconds=10)


def test_rows_of_an_older_store_are_re_keyed_once(store: Store) -> None:
    put(store, "a.jsonl", folder="/data/train")

    with store.session() as s:
        moved = repo.adopt_legacy_folder_keys(s, {"/data/train": "n1:/data/train"})
    with store.session() as s:
        again = repo.adopt_legacy_folder_keys(s, {"/data/train": "n1:/data/train"})

    assert (moved, again) == (1, 0)
    assert state_of(store, "a.jsonl", "n1:/data/train") is LocalState.PENDING


def test_a_scan_does_not_undo_another_nodes_claim_of_the_same_content(store: Store) -> None:
    """Node B read the row as pending, node A claimed it, then B records its verdict."""
    put(store, "a.jsonl")
    claim(store, "A")
    put(store, "a.jsonl")  # B's verdict, from its earlier read
    assert state_of(store, "a.jsonl") is LocalState.UPLOADING


def test_new_content_still_replaces_a_settled_state(store: Store) -> None:
    put(store, "a.jsonl")
    claim(store, "A")
    put(store, "a.jsonl", sha="b" * 64, reset_attempts=True)
    assert state_of(store, "a.jsonl") is LocalState.PENDING


def test_scanners_racing_to_insert_one_new_path_make_one_row(store: Store) -> None:
    """Nodes scanning a share all see a new file at once: one row, and no scanner fails."""
    paths = [f"new-{n}.jsonl" for n in range(20)]
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def scanner() -> None:
        try:
            for rel_path in paths:
                barrier.wait(timeout=30)
                put(store, rel_path)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=scanner) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    with store.session() as s:
        assert sorted(r.rel_path for r in repo.list_local(s, folder=SHARED)) == sorted(paths)


def test_uploads_in_flight_on_other_nodes_are_counted_apart(store: Store) -> None:
    """`syncd sync` on one node does not count another node's uploads in flight as its own
    failures (they are that node's to finish)."""
    put(store, "a.jsonl")
    put(store, "b.jsonl")
    claim(store, "n2")
    with store.session() as s:
        assert repo.uploading_elsewhere(s, node="n1", folders=[SHARED]) == 2
        assert repo.uploading_elsewhere(s, node="n2", folders=[SHARED]) == 0
        assert repo.uploading_elsewhere(s, node="n1", folders=["n1:/own"]) == 0
